"""Crash and resume: `zoo fit` killed mid-epoch, then `zoo fit --ckpt_path last`.

The resumed run must repeat the uninterrupted one step for step: the same batches (the sampler
skips what the epoch already trained on), the same random draws, learning rates, callback
states and final weights; it may redo at most the `every_n_train_steps` steps after the last
save, and counts none twice. One image task and one text task are SIGKILLed in a real
subprocess; the other four stop with an exception in-process (cheaper) and resume the same way,
and the first two again at an epoch end.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
import yaml
from crash import kill_when_stalled

from tasks.cli import cli

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
EVERY = 3  # LastCheckpoint(every_n_train_steps)
EPOCHS = 3
# Small data and models with 8 training batches an epoch, so a crash at step 11 is mid-epoch 1.
APPS = {
    "face_expression": ["--data.init_args.demo_per_class=16", "--data.init_args.batch_size=8"],
    "imdb_lstm": [
        *("--data.init_args.demo_reviews=128", "--data.init_args.batch_size=16"),
        *("--model.init_args.embedding_dim=8", "--model.init_args.hidden_dim=8"),
    ],
    "logo": [  # FreezeBackbone unfreezes at epoch 1, the epoch of the crash
        *("--data.init_args.demo_per_class=16", "--data.init_args.batch_size=6"),
        *("--data.init_args.image_size=32", "--model.init_args.pretrained=false"),
    ],
    "cat_segmentation": [
        *("--data.init_args.demo_images=20", "--data.init_args.batch_size=2"),
        *("--data.init_args.image_size=32", "--model.init_args.init_features=4"),
    ],
    "bert_news": [
        *("--data.init_args.demo_headlines=160", "--data.init_args.batch_size=16"),
        *("--model.init_args.hidden_size=16", "--model.init_args.num_layers=1"),
    ],
    "bart_summarization": [
        *("--data.init_args.demo_articles=80", "--data.init_args.batch_size=8"),
        *("--data.init_args.tokenizer_vocab_size=400", "--model.init_args.d_model=16"),
        *(
            "--model.init_args.num_layers=1",
            "--model.init_args.generate_val_batches=1",
            *("--model.init_args.num_beams=2", "--model.init_args.max_new_tokens=8"),
        ),
    ],
}
KILLED = ("face_expression", "imdb_lstm")


def _config(tmp_path: Path, app: str, name: str, stop: dict | None = None) -> Path:
    """The app's config with `last.ckpt` every EVERY steps, a CSV log of every step, `stop`."""
    config = yaml.safe_load((CONFIGS / f"{app}.yaml").read_text())
    trainer = config["trainer"]
    for callback in trainer["callbacks"]:
        if callback["class_path"] == "LastCheckpoint":
            callback["init_args"] = {"every_n_train_steps": EVERY}
    if stop is not None:
        trainer["callbacks"].insert(0, stop)
    trainer["logger"] = {
        "class_path": "CSVLogger",
        "init_args": {"save_dir": str(tmp_path / "runs"), "name": name},
    }
    trainer.update(log_every_n_steps=1, max_epochs=EPOCHS)
    path = tmp_path / f"{name}-{len(list(tmp_path.glob('*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _logged(run: Path) -> dict[tuple[int, str], float]:
    """Every value the run logged, by (step, metric name)."""
    values = {}
    with open(run / "metrics.csv", newline="") as file:
        for row in csv.DictReader(file):
            step = int(row.pop("step"))
            values.update({(step, k): float(v) for k, v in row.items() if v and k != "epoch"})
    return values


def _steps(values: dict[tuple[int, str], float]) -> list[int]:
    """The steps whose training loss was logged, in order."""
    return sorted(step for step, name in values if name == "train/loss_step")


def _uninterrupted(tmp_path: Path, app: str) -> int:
    """The reference run, logged to runs/full; its training steps per epoch."""
    cli(["fit", "-c", str(_config(tmp_path, app, "full")), *APPS[app]])
    return len(_steps(_logged(tmp_path / "runs/full/version_0"))) // EPOCHS


def _resume(tmp_path: Path, app: str, lightning_info: pytest.LogCaptureFixture) -> str:
    """`zoo fit --ckpt_path last`, in-process; what it logged and warned."""
    lightning_info.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cli(["fit", "-c", str(_config(tmp_path, app, "run")), *APPS[app], "--ckpt_path", "last"])
    return "\n".join([lightning_info.text, *(str(w.message) for w in caught)])


def _check_resumed(tmp_path: Path, stopped_at: int, output: str) -> None:
    """The crashed run resumed from its last save repeats the uninterrupted run exactly."""
    full = tmp_path / "runs/full/version_0"
    crashed, resumed = tmp_path / "runs/run/version_0", tmp_path / "runs/run/version_1"
    saved = torch.load(crashed / "checkpoints/last.ckpt", weights_only=True, map_location="cpu")
    assert 0 <= stopped_at - saved["global_step"] < EVERY  # at most EVERY steps lost
    assert "not resumable" not in output
    assert f"resuming from {crashed}" in output

    reference, after = _logged(full), _logged(resumed)
    total = len(_steps(reference))
    # The resumed run trains exactly the steps after the save: none skipped, none twice.
    assert _steps(after) == list(range(saved["global_step"], total))
    assert _steps(_logged(crashed)) == list(range(stopped_at))
    assert set(after) <= set(reference)
    names = {name for _, name in after}
    assert "train/loss_step" in names
    assert any(n.startswith("lr/") for n in names)
    assert any(n.startswith("val/") for n in names)
    # Training aggregates of the resumed epoch (train/acc, train/loss_epoch) cover only the
    # batches after the resume: neither Lightning nor torchmetrics checkpoints them.
    per_epoch = total // EPOCHS
    partial = (saved["global_step"] // per_epoch + 1) * per_epoch - 1
    for (step, name), value in after.items():
        if step == partial and name.startswith("train/") and name != "train/loss_step":
            continue
        key = step, name  # losses, learning rates, validation metrics
        assert value == pytest.approx(reference[key], rel=1e-5, abs=1e-7), key

    ends = [torch.load(run / "checkpoints/last.ckpt", weights_only=True) for run in (full, resumed)]
    assert ends[0]["global_step"] == ends[1]["global_step"] == total
    for name, weight in ends[0]["state_dict"].items():
        torch.testing.assert_close(ends[1]["state_dict"][name], weight, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("app", KILLED)
def test_sigkill_mid_epoch_then_resume_from_last(
    tmp_path: Path, app: str, lightning_info: pytest.LogCaptureFixture
) -> None:
    per_epoch = _uninterrupted(tmp_path, app)
    stall_at = per_epoch + EVERY  # mid-epoch 1, after a mid-epoch save
    marker = tmp_path / "stalled"
    stall = {"class_path": "crash.StallAt", "init_args": {"step": stall_at}}
    stall["init_args"]["marker"] = str(marker)
    command = [
        sys.executable,
        "-m",
        "tasks.cli",
        "fit",
        "-c",
        str(_config(tmp_path, app, "run", stall)),
    ]
    # the repository for `tasks`, this folder for `crash` (pytest puts it on sys.path here)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(CONFIGS.parent), str(Path(__file__).parent)]),
    }
    run = subprocess.Popen(
        [*command, *APPS[app]], cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True
    )
    kill_when_stalled(run, marker)  # the run waits before step `stall_at` until it is killed

    _check_resumed(tmp_path, stall_at, _resume(tmp_path, app, lightning_info))


IN_PROCESS = [(app, "mid-epoch") for app in APPS if app not in KILLED]
IN_PROCESS += [("face_expression", "epoch end"), ("imdb_lstm", "epoch end")]


@pytest.mark.parametrize(("app", "where"), IN_PROCESS)
def test_crash_then_resume_from_last(
    tmp_path: Path, app: str, where: str, lightning_info: pytest.LogCaptureFixture
) -> None:
    """Mid-epoch: the loader's state; at an epoch end Lightning does not hand it back, and the
    order and the random draws come from the epoch and `LastCheckpoint` alone."""
    per_epoch = _uninterrupted(tmp_path, app)
    fail_at = per_epoch + (EVERY if where == "mid-epoch" else 0)
    fail = {"class_path": "crash.FailAt", "init_args": {"step": fail_at}}
    with pytest.raises(RuntimeError, match="crash test"):
        cli(["fit", "-c", str(_config(tmp_path, app, "run", fail)), *APPS[app]])
    _check_resumed(tmp_path, fail_at, _resume(tmp_path, app, lightning_info))
