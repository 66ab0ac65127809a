"""W&B dashboards, offline: every application writes a run with its metrics, config and media.

The assertions read the offline run's files (`runs/wandb/offline-run-*/`): its `run-*.wandb`
record log (metrics, config, summary) and `files/media/` (images, tables). No server, no key.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from test_configs import CONFIGS, tiny

from tasks.cli import cli
from tasks.rouge import ROUGE_KEYS

PRESET = Path(__file__).parents[1] / "configs" / "presets" / "wandb.yaml"
APPS = {
    "face_expression": "val/acc",
    "logo": "val/acc",
    "cat_segmentation": "val/dice",
    "imdb_lstm": "val/acc",
    "bert_news": "val/f1",
    "bart_summarization": "val/rouge1",
}
# What each dashboard shows beyond curves, as media files of the offline run.
MEDIA = {
    "classifier": ["images/val/confusion_matrix_*.png", "table/val/worst_samples_*.table.json"],
    "cat_segmentation": ["images/val/overlays_*.png", "images/val/masks_*.png"],
    "bart_summarization": ["table/val/examples_epoch000_*.table.json"],
}
NAMES = {"imdb_lstm": "imdb_sentiment"}  # a run is named after its task class
TABLES = {
    "classifier": {
        "table/val/worst_samples_*": ["input", "true", "predicted", "probability", "loss"]
    },
    "bart_summarization": {
        "table/val/examples_*": ["document", "reference", "generated", *ROUGE_KEYS]
    },
}
FAKE_KEY = "zoo0test0key0" + "7" * 27  # the 40 characters of a W&B API key


@pytest.fixture
def offline_wandb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Offline W&B with a (fake) API key in the environment, its caches under tmp_path."""
    import wandb

    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    for name in ("WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR"):
        monkeypatch.setenv(name, str(tmp_path / name.lower()))
    yield
    wandb.finish()


@pytest.mark.parametrize("app", APPS)
def test_offline_run_has_metrics_config_and_media(
    app: str, offline_wandb, capfd: pytest.CaptureFixture[str]
) -> None:
    config = next(c for c in CONFIGS if c.stem == app)
    args = ["-c", str(config), "-c", str(PRESET), *tiny(config)]
    steps = ["--trainer.max_epochs=1", "--trainer.limit_train_batches=2"]
    # wandb's service process outlives a run and keeps its first working directory: give it
    # this test's folder as an absolute path.
    offline = [
        "--trainer.logger.init_args.offline=true",
        f"--trainer.logger.init_args.save_dir={Path.cwd() / 'runs'}",
    ]
    cli(["fit", *args, *steps, *offline])
    import wandb

    wandb.finish()

    (run,) = Path("runs/wandb").glob("offline-run-*")  # one run per fit
    monitor = APPS[app]
    expected = {
        "metric curves": monitor,
        "LR curves": "lr/",
        "run named <task>-<time>": f"{NAMES.get(app, app)}-",
        "the whole resolved config, data included": "batch_size",
        "the best score in the summary": f"best/{monitor}",
        "the checkpoint in the summary": "best_checkpoint",
    }
    records = _records(run, expected.values())
    for what, marker in expected.items():
        assert marker.encode() in records, what
    kind = "classifier" if monitor in ("val/acc", "val/f1") else app
    for pattern in MEDIA[kind]:
        assert list((run / "files" / "media").glob(pattern)), pattern
    for pattern, columns in TABLES.get(kind, {}).items():
        table = next((run / "files" / "media").glob(pattern))
        assert json.loads(table.read_text())["columns"] == columns

    folder = next(Path("runs/lightning-task-zoo").iterdir())
    summary = json.loads((folder / "summary.json").read_text())
    assert Path(summary["best_checkpoint"]).is_file()
    assert (folder / "config.yaml").is_file()

    # The key is never written: not in the run's files, config, checkpoints or output.
    out, err = capfd.readouterr()
    assert FAKE_KEY not in out + err
    for path in Path("runs").rglob("*"):
        if path.is_file():
            assert FAKE_KEY.encode() not in path.read_bytes(), path


def _records(run: Path, markers, timeout: float = 20.0) -> bytes:
    """The run's record log once it holds every marker: wandb's service writes it after
    `wandb.finish()` returns, so wait for it (at most `timeout` seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        records = b"".join(path.read_bytes() for path in run.glob("run-*.wandb"))
        if all(m.encode() in records for m in markers) or time.monotonic() > deadline:
            return records
        time.sleep(0.2)
