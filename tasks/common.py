"""Small pieces every task shares: optimizer wiring and classification metrics."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
)

from callbacks.media import log_image


def configure_optimizers(
    module: LightningModule,
    optimizer: OptimizerCallable,
    scheduler: LRSchedulerCallable | None,
    monitor: str = "val/loss",
) -> Any:
    """Build the injected optimizer over trainable parameters and, if given, its scheduler.

    Epoch-based schedulers step once per epoch; `ReduceLROnPlateau` watches `monitor`.
    """
    params = [p for p in module.parameters() if p.requires_grad]
    opt = optimizer(params)
    if scheduler is None:
        return opt
    sched = scheduler(opt)
    config: dict[str, Any] = {"scheduler": sched, "interval": "epoch"}
    if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
        config["monitor"] = monitor
    return {"optimizer": opt, "lr_scheduler": config}


def classification_metrics(num_classes: int) -> MetricCollection:
    """Accuracy and macro F1, to be cloned per stage with `prefix="val/"` etc."""
    return MetricCollection(
        {
            "acc": MulticlassAccuracy(num_classes, average="micro"),
            "f1": MulticlassF1Score(num_classes, average="macro"),
        }
    )


def log_confusion_matrix(
    module: LightningModule, matrix: MulticlassConfusionMatrix, class_names: Sequence[str], key: str
) -> None:
    """Compute (on every rank: it syncs), plot and log the confusion matrix.

    Reset it at epoch start, not here: a reset inside `trainer.validate`'s inference mode would
    leave inference tensors that a later `fit` cannot update in place.
    """
    if module.trainer.sanity_checking:
        return
    values = matrix.compute()
    if not module.trainer.is_global_zero:
        return
    fig, _ = matrix.plot(values, labels=list(class_names))
    fig.set_size_inches(1.0 + 0.7 * len(class_names), 0.8 + 0.7 * len(class_names))
    log_image(module.trainer, key, fig, step=module.current_epoch)
