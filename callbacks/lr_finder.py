"""LR range test: Lightning's `LearningRateFinder`, reporting its curve, span and suggestion."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import LearningRateFinder
from lightning.pytorch.utilities import rank_zero_info
from typing_extensions import override

from callbacks.media import log_image


def steepest_descent(
    lrs: Sequence[float], losses: Sequence[float], skip_begin: int = 10, skip_end: int = 1
) -> float | None:
    """The LR where the smoothed loss falls fastest per decade of LR (None if undecidable).

    Lightning's own `suggestion()` takes the slope against the LR itself; on an exponential
    sweep that favours the first, tightly spaced LRs and suggests ~10-50x too low
    (Lightning-AI/pytorch-lightning#21141). The slope against log10(LR) is fastai's "steep"
    point. The first `skip_begin` and last `skip_end` points are noise or divergence.
    """
    lr = np.asarray(lrs, dtype=float)[skip_begin : len(lrs) - skip_end]
    loss = np.asarray(losses, dtype=float)[skip_begin : len(losses) - skip_end]
    keep = np.isfinite(loss)
    lr, loss = lr[keep], loss[keep]
    if len(lr) < 3:
        return None
    return float(lr[np.argmin(np.gradient(loss, np.log10(lr)))])


class LRFinder(LearningRateFinder):
    """Sweep the LR exponentially before training and report what it suggests.

    The sweep takes `num_training_steps` optimizer steps from `min_lr` to `max_lr`, cycling the
    training data for as many epochs as that needs (`trainer.max_epochs` does not cut it short).
    It stops early only when Lightning's divergence check fires: the smoothed loss exceeds 4x its
    best. Logs the loss-vs-LR curve as the image `lr_find/curve` and prints two lines::

        LR range test: swept lr 1.00e-06 to 1.00e+00 in 100 steps (2.7 passes over 37 batches).
        LR range test suggests lr = 9.55e-05: set it as model.init_args.optimizer.init_args.lr.

    After a divergence the first line says where the loss diverged and how many of the planned
    steps ran. The suggestion is the steepest descent of the loss per decade of LR (see
    `steepest_descent`), marked on the curve. Our tasks take the LR inside
    the injected optimizer, so nothing is changed for you: put the suggestion into the config's
    `optimizer.init_args.lr`. The weights and optimizer state are restored after the sweep and
    training continues with the configured LR; stop it with Ctrl-C if you only wanted the sweep.

    Args:
        min_lr: Start of the sweep.
        max_lr: End of the sweep.
        num_training_steps: Optimizer steps of the sweep, whatever the epoch length.
    """

    def __init__(
        self, min_lr: float = 1e-6, max_lr: float = 1.0, num_training_steps: int = 100
    ) -> None:
        if not 0 < min_lr < max_lr:
            raise ValueError(f"Need 0 < min_lr < max_lr, got min_lr={min_lr}, max_lr={max_lr}.")
        if num_training_steps < 2:
            raise ValueError(f"num_training_steps must be at least 2, got {num_training_steps}.")
        super().__init__(
            min_lr=min_lr, max_lr=max_lr, num_training_steps=num_training_steps, update_attr=False
        )
        self.num_training_steps = num_training_steps

    @override
    def lr_find(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # Lightning runs the sweep in the trainer's own fit loop and lifts only its `max_steps`,
        # so the sweep also ends at `max_epochs` (after one epoch with --trainer.max_epochs=1)
        # and is then reported as a diverging loss. Lift the epoch limit for the sweep alone.
        # Every epoch has at least one batch, so this bound always holds the whole sweep.
        max_epochs = trainer.fit_loop.max_epochs
        trainer.fit_loop.max_epochs = (
            trainer.current_epoch + self.num_training_steps * trainer.accumulate_grad_batches
        )
        try:
            super().lr_find(trainer, pl_module)
        finally:
            trainer.fit_loop.max_epochs = max_epochs
        if self.optimal_lr is None or not trainer.is_global_zero:
            return
        self._report(trainer)

    def _report(self, trainer: Trainer) -> None:
        """Log the curve; print the LR span actually swept and the suggestion."""
        lrs = self.optimal_lr.results["lr"]
        if not lrs:
            rank_zero_info("LR range test: no training steps ran, nothing to report.")
            return
        steps = len(lrs)
        span = f"swept lr {lrs[0]:.2e} to {lrs[-1]:.2e} in {steps} steps"
        batches = trainer.num_training_batches
        if math.isfinite(batches) and batches > 0:
            passes = steps * trainer.accumulate_grad_batches / batches
            span += f" ({passes:.1f} passes over {batches} batches)"
        if steps < self.num_training_steps:
            rank_zero_info(
                f"LR range test: the loss diverged at lr {lrs[-1]:.2e}; {span} "
                f"of {self.num_training_steps} planned."
            )
        else:
            rank_zero_info(f"LR range test: {span}.")

        suggestion = steepest_descent(lrs, self.optimal_lr.results["loss"])
        figure = self.optimal_lr.plot(suggest=False, show=False)
        if suggestion is not None:
            axes = figure.axes[0]
            axes.axvline(suggestion, color="red", linestyle="--", label=f"{suggestion:.1e}")
            axes.legend()
        log_image(trainer, "lr_find/curve", figure, step=0)
        if suggestion is None:
            rank_zero_info("LR range test: no suggestion (too few steps or a flat loss curve).")
        else:
            rank_zero_info(
                f"LR range test suggests lr = {suggestion:.2e}: set it as "
                "model.init_args.optimizer.init_args.lr."
            )
