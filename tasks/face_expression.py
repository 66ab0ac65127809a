"""Face expression from mouth crops: a small CNN, cross-entropy, accuracy, macro F1, confusion."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn
from torchmetrics.classification import MulticlassConfusionMatrix
from typing_extensions import override

from datamodules.common import eval_transform, load_image
from tasks.common import classification_metrics, configure_optimizers, log_confusion_matrix


class SmallCNN(nn.Module):
    """Conv-BN-ReLU-MaxPool blocks, then a dropout MLP head; any input size."""

    def __init__(
        self, in_channels: int, num_classes: int, widths: Sequence[int], dropout: float
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for width in widths:
            layers += [
                nn.Conv2d(in_channels, width, 3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
            in_channels = width
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(4)  # keeps where the mouth corners are, for any size
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(in_channels * 16, 128),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(128, num_classes),
        )

    @override
    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, num_classes)
        return self.head(self.pool(self.features(x)))


class FaceExpressionTask(LightningModule):
    """Classify mouth crops into expressions.

    Args:
        class_names: Expression names in label order (linked from the datamodule by `zoo`).
        in_channels: 1 for grayscale, 3 for RGB input (linked from the datamodule).
        image_size: Input side, saved so a checkpoint alone can preprocess (linked).
        mean: Per-channel normalisation mean (linked; one value serves every channel).
        std: Per-channel normalisation std (linked).
        class_counts: Training images per class (linked); used by `class_weights="balanced"`.
        widths: Channels of the conv blocks; each block halves the resolution.
        dropout: Dropout before each linear layer.
        class_weights: Cross-entropy weights per class, or "balanced" (inverse frequency).
        label_smoothing: Cross-entropy label smoothing.
        optimizer: Optimizer factory, chosen in YAML.
        scheduler: Optional LR scheduler factory (stepped per epoch).
    """

    def __init__(
        self,
        class_names: Sequence[str],
        in_channels: int = 3,
        image_size: int = 48,
        mean: Sequence[float] = (0.5,),
        std: Sequence[float] = (0.5,),
        class_counts: Sequence[int] | None = None,
        widths: Sequence[int] = (32, 64, 128),
        dropout: float = 0.3,
        class_weights: Sequence[float] | Literal["balanced"] | None = None,
        label_smoothing: float = 0.0,
        optimizer: OptimizerCallable = torch.optim.AdamW,
        scheduler: LRSchedulerCallable | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["optimizer", "scheduler"])
        self.class_names = list(class_names)
        num_classes = len(self.class_names)
        if num_classes < 2:
            raise ValueError(f"Need at least 2 classes, got class_names={self.class_names}")
        self.net = SmallCNN(in_channels, num_classes, widths, dropout)
        weight = self._class_weight(class_weights, class_counts, num_classes)
        self.loss_fn = nn.CrossEntropyLoss(weight=weight, label_smoothing=label_smoothing)
        metrics = classification_metrics(num_classes)
        self.train_metrics = metrics.clone(prefix="train/")
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")
        self.val_confusion = MulticlassConfusionMatrix(num_classes)
        self.test_confusion = MulticlassConfusionMatrix(num_classes)
        self.optimizer = optimizer
        self.scheduler = scheduler

    @staticmethod
    def _class_weight(
        weights: Sequence[float] | str | None, counts: Sequence[int] | None, num_classes: int
    ) -> torch.Tensor | None:
        if weights is None:
            return None
        if weights == "balanced":
            if not counts or len(counts) != num_classes or min(counts) == 0:
                raise ValueError(
                    "class_weights='balanced' needs class_counts with a positive count per class "
                    f"(got {counts}); `zoo` links them from the data, in Python pass them."
                )
            counts_t = torch.tensor(counts, dtype=torch.float32)
            return counts_t.sum() / (num_classes * counts_t)
        if len(weights) != num_classes:
            raise ValueError(f"class_weights has {len(weights)} values for {num_classes} classes")
        return torch.tensor(weights, dtype=torch.float32)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Class probabilities (B, num_classes) for preprocessed images (B, C, H, W)."""
        return self.net(images).softmax(dim=-1)

    @override
    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, self.train_metrics, "train")

    @override
    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._shared_step(batch, self.val_metrics, "val", self.val_confusion)

    @override
    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._shared_step(batch, self.test_metrics, "test", self.test_confusion)

    def _shared_step(
        self,
        batch: Any,
        metrics: Any,
        stage: str,
        confusion: MulticlassConfusionMatrix | None = None,
    ) -> torch.Tensor:
        images, labels, _ = batch
        logits = self.net(images)
        loss = self.loss_fn(logits, labels)
        training = stage == "train"
        # Per-step train loss is logged without a cross-rank sync; epoch values are synced.
        size = len(labels)
        self.log(
            f"{stage}/loss",
            loss,
            prog_bar=True,
            on_step=training,
            on_epoch=True,
            sync_dist=not training,
            batch_size=size,
        )
        metrics.update(logits, labels)
        self.log_dict(metrics, prog_bar=not training, on_step=False, on_epoch=True, batch_size=size)
        if confusion is not None:
            confusion.update(logits, labels)
        return loss

    @override
    def on_validation_epoch_start(self) -> None:
        self.val_confusion.reset()

    @override
    def on_test_epoch_start(self) -> None:
        self.test_confusion.reset()

    @override
    def on_validation_epoch_end(self) -> None:
        log_confusion_matrix(self, self.val_confusion, self.class_names, "val/confusion_matrix")

    @override
    def on_test_epoch_end(self) -> None:
        log_confusion_matrix(self, self.test_confusion, self.class_names, "test/confusion_matrix")

    def predict_step(self, batch: Any, batch_idx: int) -> list[dict[str, Any]]:
        """One row per image: path, predicted class, true class when known, probabilities."""
        images, labels, names = batch
        return self._rows(self(images), names, labels.tolist())

    def _rows(
        self, probs: torch.Tensor, names: Sequence[str], labels: Sequence[int]
    ) -> list[dict[str, Any]]:
        rows = []
        predicted = probs.argmax(dim=-1).tolist()
        for name, label, index, p in zip(names, labels, predicted, probs.tolist(), strict=True):
            row: dict[str, Any] = {"path": name, "predicted": self.class_names[index]}
            if label >= 0:
                row["true"] = self.class_names[label]
            row.update({f"prob_{c}": v for c, v in zip(self.class_names, p, strict=True)})
            rows.append(row)
        return rows

    @torch.inference_mode()
    def predict_images(self, paths: Sequence[str | Path]) -> list[dict[str, Any]]:
        """Predict image files with the preprocessing saved in the checkpoint (no datamodule)."""
        hp = self.hparams
        transform = eval_transform(hp.image_size, hp.mean, hp.std)
        batch = torch.stack([transform(load_image(p, hp.in_channels)) for p in paths])
        self.eval()
        probs = self(batch.to(self.device))
        return self._rows(probs, [str(p) for p in paths], [-1] * len(paths))

    @override
    def configure_optimizers(self) -> Any:
        return configure_optimizers(self, self.optimizer, self.scheduler)
