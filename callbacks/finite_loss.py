"""Stop training at the first NaN or infinite loss, before it reaches the weights."""

from __future__ import annotations

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from typing_extensions import override

from callbacks.last_checkpoint import LastCheckpoint


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


class FiniteLoss(Callback):
    """Raise `NonFiniteLossError` when a training loss is NaN or inf, before its backward pass.

    The bad step never updates the weights (its forward pass may already have reached
    BatchNorm's running statistics), and no checkpoint is written after it: `last.ckpt` keeps the
    state before it (at most `LastCheckpoint.every_n_train_steps` steps back). The
    message names the step, the loss value, the likely causes and the checkpoint to resume from.
    It checks every step (one host-device sync per step, like the progress bar's loss).
    `zoo fit` adds it when a config has none.
    """

    @override
    def on_before_backward(
        self, trainer: Trainer, pl_module: LightningModule, loss: torch.Tensor
    ) -> None:
        if bool(loss.isfinite().all()):
            return
        value = loss.item()
        saved = [
            c.path(trainer) for c in trainer.checkpoint_callbacks if isinstance(c, LastCheckpoint)
        ]
        resume = next((str(p) for p in saved if p.is_file()), None)
        raise NonFiniteLossError(
            f"The training loss is {value} at step {trainer.global_step} (epoch "
            f"{trainer.current_epoch}, batch {trainer.fit_loop.epoch_loop.batch_idx}); training "
            "stopped before this step changed the weights. Likely causes: the learning rate is "
            "too high (try a tenth of it, or a longer warmup); a bad input in this batch (check "
            "the data audit; `--trainer.detect_anomaly true` names the layer that first made a "
            "NaN); fp16 overflow (use `--trainer.precision bf16-mixed` or 32). "
            + (f"Resume from {resume}." if resume else "No checkpoint was written yet.")
        )
