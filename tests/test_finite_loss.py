"""A NaN loss stops training before it reaches the weights, and names the step and the fixes."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Callback, Trainer

from callbacks import FiniteLoss, LastCheckpoint
from callbacks.finite_loss import NonFiniteLossError
from datamodules.face_expression import FaceExpressionDataModule
from tasks.cli import cli
from tasks.face_expression import FaceExpressionTask

CONFIG = Path(__file__).parents[1] / "configs" / "face_expression.yaml"


class PoisonBatch(Callback):
    """Turn one image of the batch at `step` into NaNs, as a corrupt input would."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            batch[0][0].fill_(float("nan"))


def test_a_nan_batch_stops_training_and_keeps_the_checkpoint_before(tmp_path: Path) -> None:
    data = FaceExpressionDataModule(demo_per_class=16, batch_size=8)
    model = FaceExpressionTask(
        class_names=["frown", "neutral", "smile", "surprise"],
        optimizer=functools.partial(torch.optim.AdamW, lr=1e-3),
    )
    trainer = Trainer(
        max_epochs=3,
        logger=False,
        default_root_dir=tmp_path,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[LastCheckpoint(every_n_train_steps=1), PoisonBatch(step=3), FiniteLoss()],
    )
    with pytest.raises(NonFiniteLossError) as error:
        trainer.fit(model, data)
    message = str(error.value)
    assert "loss is nan at step 3 (epoch 0, batch 3)" in message
    for cause in ("learning rate", "detect_anomaly", "bf16-mixed"):
        assert cause in message
    checkpoint = tmp_path / "checkpoints" / "last.ckpt"
    assert f"Resume from {checkpoint}" in message

    # The checkpoint holds the state before the bad step, all finite, and the bad step changed
    # no weight (its forward pass did reach BatchNorm's running statistics in memory).
    saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
    assert saved["global_step"] == 3
    assert all(torch.isfinite(v.float()).all() for v in saved["state_dict"].values())
    for name, weight in model.named_parameters():
        assert torch.equal(saved["state_dict"][name], weight), name


def test_zoo_fit_guards_every_run() -> None:
    result = cli(
        ["fit", "-c", str(CONFIG), "--data.init_args.demo_per_class=8"]
        + ["--trainer.fast_dev_run=1"]
    )
    assert sum(isinstance(c, FiniteLoss) for c in result.trainer.callbacks) == 1
