"""Every application under DDP on 2 CPU processes: the same metrics, one predictions file.

Logo trains with its backbone frozen throughout (`FreezeBackbone`) under plain `ddp`; the
callback turns on DDP's unused-parameter search for it.

One subprocess (`ddp_run.py`) fits, validates and predicts every config with
`--trainer.strategy=ddp --trainer.accelerator=cpu --trainer.devices=2`; each test then validates
the same checkpoint in a single process here and compares.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_configs import CONFIGS, tiny

from tasks.cli import cli

APPS = [
    c
    for c in CONFIGS
    if c.stem
    in {
        "face_expression",
        "logo",
        "cat_segmentation",
        "imdb_lstm",
        "bert_news",
        "bart_summarization",
    }
]
WANDB = Path(__file__).parents[1] / "configs" / "presets" / "wandb.yaml"
STEPS = ["--trainer.max_epochs=1", "--trainer.limit_train_batches=2"]
# Odd validation sizes, so a sampler that pads the last rank's share with repeats would show
# (the face and logo demos hold out the same count per class: always even). Summarization
# generates on every validation batch, so both runs score the same documents
# (`generate_val_batches` counts batches per process).
EXTRA = {
    "bart_summarization": [
        "--data.init_args.demo_articles=36",
        "--model.init_args.generate_val_batches=null",
    ],
    "bert_news": ["--data.init_args.demo_headlines=60"],
    "cat_segmentation": ["--data.init_args.demo_images=12"],
    "imdb_lstm": ["--data.init_args.demo_reviews=60"],
}


def _args(config: Path) -> list[str]:
    return ["-c", str(config), *tiny(config), *EXTRA.get(config.stem, []), *STEPS]


@pytest.fixture(scope="module")
def ddp_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ddp")
    jobs = [{"name": c.stem, "args": _args(c)} for c in APPS]
    wandb = [f"--trainer.logger.init_args.save_dir={folder / 'runs'}"]
    jobs.append({"name": "wandb", "args": [*_args(APPS[0]), "-c", str(WANDB), *wandb]})
    (folder / "jobs.json").write_text(json.dumps(jobs))
    script = Path(__file__).with_name("ddp_run.py")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1]), "WANDB_MODE": "offline"}
    done = subprocess.run(
        [sys.executable, str(script), "jobs.json"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("config", APPS, ids=[c.stem for c in APPS])
def test_two_processes_match_one(config: Path, ddp_runs: Path) -> None:
    result = json.loads((ddp_runs / f"{config.stem}.json").read_text())
    checkpoint = ddp_runs / result["checkpoint"]
    single = cli(["validate", *_args(config), f"--ckpt_path={checkpoint}"])
    metrics = {k: v.item() for k, v in single.trainer.callback_metrics.items()}

    # Torchmetrics sync their states across ranks, and every sample is validated exactly once.
    assert result["val"].keys() == metrics.keys()
    for key in metrics.keys() - {"val/loss"}:
        assert result["val"][key] == pytest.approx(metrics[key], abs=1e-6), key
    # The loss's epoch value is the sample-weighted mean of batch losses (exact for the
    # classifiers), but a batch's soft Dice (cat) or token mean (BART) depends on the batch.
    assert result["val"]["val/loss"] == pytest.approx(metrics["val/loss"], rel=1e-3)

    # One predictions file, every input exactly once, in the single-process order.
    predictions = ddp_runs / result["predictions"]
    assert not list(predictions.parent.glob("*.rank*")), "part files are merged and deleted"
    predicted = cli(["predict", *_args(config), f"--ckpt_path={checkpoint}"])
    (writer,) = [c for c in predicted.trainer.callbacks if hasattr(c, "write_on_batch_end")]
    assert _keys(predictions) == _keys(writer.path)
    assert len(set(_keys(predictions))) == len(_keys(predictions))


def _keys(path: Path) -> list[str]:
    """The input each prediction row is for (its path or id)."""
    with path.open() as handle:
        if path.suffix == ".jsonl":
            rows = [json.loads(line) for line in handle]
        else:
            rows = list(csv.DictReader(handle))
    return [row.get("path", row.get("id")) for row in rows]


@pytest.mark.slow
def test_one_run_folder_and_one_wandb_run_per_command(ddp_runs: Path) -> None:
    # TensorBoard: rank zero alone writes, so fit, validate and predict make one folder each.
    for config in APPS:
        folders = list((ddp_runs / "runs" / config.stem).glob("version_*"))
        assert len(folders) == 3, folders
        assert all(len(list(f.glob("events.out.tfevents.*"))) == 1 for f in folders)
    # W&B: one run per command, not one per process (Lightning #11380).
    assert len(list((ddp_runs / "runs" / "wandb").glob("offline-run-*"))) == 3
    result = json.loads((ddp_runs / "wandb.json").read_text())
    folder = Path(result["checkpoint"]).parents[1]
    assert list((ddp_runs / folder).glob("summary.json")), "the run summary, once"
