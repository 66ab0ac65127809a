"""Sanity check: the first training loss of a fresh classifier should be about ln(num_classes)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from typing_extensions import override

KEY = "sanity/initial_loss"


class InitialLossCheck(Callback):
    """Compare the first training loss with ln(num_classes), the loss of a uniform prediction.

    CS231n's first sanity check: a freshly initialised softmax classifier predicts roughly
    uniformly, so its cross-entropy is about ln C. Class weights and label smoothing keep that
    expectation (a weighted mean of ln C is ln C; smoothed targets against a uniform prediction
    also give ln C). Checked once, on the first training batch of a fresh run (global step 0; not
    after resume): warns when |loss - ln C| > tolerance * ln C, else one info line. The loss is
    logged under `sanity/initial_loss` (step 0) to every logger. A multi-label module
    (hyperparameter `multi_label`: a sigmoid and BCE per class) should start at ln 2 instead.

    Args:
        num_classes: Number of classes C; default `len(hparams["class_names"])` when the module
            has that hyperparameter, otherwise the check is skipped with an info line.
        tolerance: Allowed relative deviation from ln C.
    """

    def __init__(self, num_classes: int | None = None, tolerance: float = 0.25) -> None:
        if num_classes is not None and num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        if not tolerance > 0:
            raise ValueError(f"tolerance must be > 0, got {tolerance}")
        self.num_classes = num_classes
        self.tolerance = tolerance
        self._classes: int | None = None  # resolved at fit start
        self._multi_label = False
        self._armed = False

    @override
    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._classes = self.num_classes
        self._multi_label = bool(pl_module.hparams.get("multi_label"))
        class_names = pl_module.hparams.get("class_names")
        if self._classes is None and class_names:
            self._classes = len(class_names)
        if self._classes is None:
            rank_zero_info("InitialLossCheck: set num_classes to check the initial loss")
        elif self._classes < 2:
            rank_zero_info(f"InitialLossCheck: {self._classes} class(es); nothing to check")
            self._classes = None

    @override
    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        # global_step is already 1 at the first batch's end: decide here. A resumed run starts
        # with global_step > 0 and is never checked.
        self._armed = self._classes is not None and trainer.global_step == 0 and batch_idx == 0

    @override
    def on_train_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        if not self._armed:
            return
        self._armed = False
        # Lightning 2.6 passes {"loss": detached loss / accumulate_grad_batches, **extras} in
        # automatic optimisation; manual optimisation passes what training_step returned.
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            rank_zero_info("InitialLossCheck: training_step returned no scalar loss; not checked")
            return
        value = loss.item()
        if pl_module.automatic_optimization:
            value *= trainer.accumulate_grad_batches
        for logger in trainer.loggers:  # directly: `self.log` at step 0 waits for log_every_n_steps
            logger.log_metrics({KEY: value}, step=0)
        classes = 2 if self._multi_label else self._classes  # BCE: two outcomes per class
        expected = math.log(classes)
        if not math.isfinite(value) or abs(value - expected) > self.tolerance * expected:
            rank_zero_warn(
                f"InitialLossCheck: initial loss {value:.3g} differs from ln({classes}) = "
                f"{expected:.3g} expected for {classes} classes at initialisation: check the "
                "final layer's initialisation, the labels, or the loss"
            )
        else:
            rank_zero_info(
                f"InitialLossCheck: initial loss {value:.3g} ≈ ln({classes}) = {expected:.3g}: OK"
            )
