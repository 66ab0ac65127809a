"""What the course-style image classifier scripts share: ImageFolder reading, the epoch loop."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset


class FileDataset(Dataset):
    """What `ImageFolder` does, on given files: (transform(PIL image), label)."""

    def __init__(
        self, paths: Sequence[Path], labels: Sequence[int], mode: str, transform: Callable
    ) -> None:
        self.paths, self.labels, self.mode, self.transform = paths, labels, mode, transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        with Image.open(self.paths[i]) as image:
            return self.transform(image.convert(self.mode)), self.labels[i]


def fit_classifier(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    train: DataLoader,
    val: DataLoader,
    epochs: int,
    start: float,
) -> list[float]:
    """The course's loop: cross-entropy steps, then validation accuracy after every epoch."""
    scores = []
    for _ in range(epochs):
        model.train()
        for images, labels in train:
            loss = nn.functional.cross_entropy(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            right = sum((model(x).argmax(-1) == y).sum().item() for x, y in val)
        scores.append(right / len(val.dataset))
        elapsed = time.perf_counter() - start
        print(
            f"baseline epoch {len(scores)}: val acc {scores[-1]:.3f}, {elapsed:.0f} s", flush=True
        )
    return scores
