"""A course-style face-expression script: the course's ImageFolder reading (course notes 000,
lines 235-440), its ToTensor + Normalize preprocessing with no augmentation, and the small CNN a
course reader writes: three conv-BN-ReLU-maxpool blocks (32, 64, 128), a 128-unit hidden layer
with dropout 0.5, Adam 1e-3, batch 64, cross-entropy. The course gives no network for this
project; this is the "plain 40-line CNN of the course's kind" the issue compared against.

Same split as the zoo: the zoo datamodule's reader and seeded hold-out give the file lists.
Grayscale input at the datamodule's image size (48 for FER2013).
"""

from __future__ import annotations

import time

import torch
from torch import nn


def baseline(root: str, epochs: int, seed: int = 0) -> tuple[list[float], float]:
    """Train the script for `epochs`; validation accuracy per epoch and wall seconds."""
    from baselines.classifier_loop import FileDataset, fit_classifier
    from torch.utils.data import DataLoader
    from torchvision import transforms

    from datamodules.face_expression import FaceExpressionDataModule

    torch.manual_seed(seed)
    start = time.perf_counter()
    data = FaceExpressionDataModule(root=root)
    source, size = data.source, data.image_size
    gray = source.channels == 1
    preprocess = transforms.Compose(
        [
            transforms.Resize((size, size)),
            transforms.ToTensor(),
            transforms.Normalize([0.5] * source.channels, [0.5] * source.channels),
        ]
    )

    def dataset(split: str) -> FileDataset:  # ImageFolder on the zoo's split
        files = source.splits[split]
        return FileDataset(files.paths, files.labels, "L" if gray else "RGB", preprocess)

    def block(cin: int, cout: int) -> list[nn.Module]:
        return [
            nn.Conv2d(cin, cout, 3, padding=1),
            nn.BatchNorm2d(cout),
            nn.ReLU(),
            nn.MaxPool2d(2),
        ]

    model = nn.Sequential(
        *block(source.channels, 32),
        *block(32, 64),
        *block(64, 128),
        nn.Flatten(),
        nn.Linear(128 * (size // 8) ** 2, 128),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(128, len(source.class_names)),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    train = DataLoader(dataset("train"), batch_size=64, shuffle=True)
    val = DataLoader(dataset("val"), batch_size=64)
    scores = fit_classifier(model, optimizer, train, val, epochs, start)
    return scores, time.perf_counter() - start
