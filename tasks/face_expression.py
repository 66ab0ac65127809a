"""Face expression from mouth crops: a small CNN, cross-entropy, accuracy, macro F1, confusion."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn
from typing_extensions import override

from tasks.common import ClassificationTask


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


class FaceExpressionTask(ClassificationTask):
    """Classify mouth crops into expressions with `SmallCNN` (see `ClassificationTask`).

    The other arguments are `ClassificationTask`'s (their help comes from there).

    Args:
        widths: Channels of the conv blocks; each block halves the resolution.
        dropout: Dropout before each linear layer.
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
        net = SmallCNN(in_channels, len(class_names), widths, dropout)
        facts = (class_names, in_channels, image_size, mean, std, class_counts)
        super().__init__(net, *facts, class_weights, label_smoothing, optimizer, scheduler)
        self.save_hyperparameters(ignore=["optimizer", "scheduler"])
