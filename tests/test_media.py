"""The logger-agnostic media helper: files without a logger, TensorBoard with one, muted dummies."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from lightning.pytorch import Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.loggers.logger import DummyLogger
from matplotlib.figure import Figure
from PIL import Image

from callbacks.media import log_histogram, log_image, log_table
from tasks.cli import cli


def test_without_a_logger_media_are_files_in_the_run_dir(tmp_path: Path) -> None:
    trainer = Trainer(logger=False, default_root_dir=tmp_path / "run")
    fig = Figure(figsize=(2, 1))
    fig.add_subplot().plot([0, 1], [1, 0])
    log_image(trainer, "val/curve", fig, step=3)
    log_image(trainer, "grid", torch.rand(3, 10, 20), step=0)  # CHW float in [0, 1]
    log_image(trainer, "gray", np.zeros((5, 7), np.uint8), step=0)
    log_histogram(trainer, "grads/w", torch.randn(100), step=1)
    log_table(trainer, "errors", ["path", "p"], [["a.png", 0.25], ["b.png", 0.5]])

    media = tmp_path / "run" / "media"
    assert Image.open(media / "val_curve_step000003.png").size == (200, 100)
    assert Image.open(media / "grid_step000000.png").size == (20, 10)
    assert Image.open(media / "gray_step000000.png").mode == "RGB"
    assert (media / "grads_w_step000001.png").is_file()
    with (media / "errors.csv").open() as handle:
        assert list(csv.reader(handle)) == [["path", "p"], ["a.png", "0.25"], ["b.png", "0.5"]]
    assert not (Path.cwd() / "media").exists()  # never the working directory


def test_tensorboard_gets_images_and_histograms(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logger = TensorBoardLogger(tmp_path)
    trainer = Trainer(logger=logger, default_root_dir=tmp_path)
    log_image(trainer, "first_layer/filters", np.zeros((4, 4, 3), np.uint8), step=2)
    log_histogram(trainer, "update_ratio/log10", torch.randn(50), step=2)
    logger.experiment.flush()
    events = EventAccumulator(logger.log_dir, size_guidance={"images": 0, "histograms": 0})
    events.Reload()
    assert events.Tags()["images"] == ["first_layer/filters"]
    assert events.Tags()["histograms"] == ["update_ratio/log10"]
    assert not (Path(logger.log_dir) / "media").exists()


def test_dummy_logger_and_failures_write_nothing(tmp_path: Path) -> None:
    trainer = Trainer(logger=False, default_root_dir=tmp_path)
    trainer.loggers = [DummyLogger()]  # what fast_dev_run and lr_find install
    log_image(trainer, "x", np.zeros((4, 4, 3), np.uint8))
    assert not (tmp_path / "media").exists()
    trainer.loggers = []
    with pytest.warns(UserWarning, match="Could not log image 'broken'"):
        log_image(trainer, "broken", "not an image")  # warns, never raises


def test_worst_samples_table_holds_the_highest_losses() -> None:
    config = Path(__file__).parents[1] / "configs" / "face_expression.yaml"
    args = ["fit", "-c", str(config), "--trainer.logger=false", "--trainer.max_epochs=1"]
    cli([*args, "--data.init_args.demo_per_class=16", "--trainer.limit_train_batches=2"])
    table = Path("runs/media/val_worst_samples.csv")
    with table.open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 8  # `worst_samples` of the 16 validation crops
    losses = [float(row["loss"]) for row in rows]
    assert losses == sorted(losses, reverse=True)
    classes = {"frown", "neutral", "smile", "surprise"}
    for row in rows:
        assert {row["true"], row["predicted"]} <= classes
        # The loss is -log p(true class), and p(true) <= p(predicted).
        assert float(row["loss"]) >= -math.log(float(row["probability"])) - 1e-3
        assert (table.parent / row["input"]).is_file()
