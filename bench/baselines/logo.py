"""The course's logo classifier (course notes 004, line 3892): ImageFolder reading, the course's
own eval-style transform for training too (bicubic `Resize((224, 224))`, no crop, its "advprop"
scaling to [-1, 1]; the course removed the random crop because it cut the logo off), EfficientNet-B0
with its classifier resized to the classes (the course's `from_name`: random weights when not
`pretrained`; torchvision's `efficientnet_b0` here), cross-entropy, and SGD with momentum 0.9 and
weight decay 1e-4 as in the EfficientNet ImageNet script it copies. That script's batch 256 and
LR 0.1 are for ImageNet; on a folder of ~150 photos a course reader takes batch 16 and LR 0.01.

Same split as the zoo: the zoo datamodule's reader and seeded hold-out give the file lists.
"""

from __future__ import annotations

import time

import torch


def baseline(root: str, epochs: int, seed: int = 0) -> tuple[list[float], float]:
    """Train the script for `epochs`; validation accuracy per epoch and wall seconds."""
    from baselines.classifier_loop import FileDataset, fit_classifier
    from torch.utils.data import DataLoader
    from torchvision import transforms

    from datamodules.logo import LogoDataModule
    from tasks.logo import efficientnet

    torch.manual_seed(seed)
    start = time.perf_counter()
    source = LogoDataModule(root=root).source
    transform = transforms.Compose(
        [
            transforms.Resize((224, 224), interpolation=transforms.InterpolationMode.BICUBIC),
            transforms.ToTensor(),
            transforms.Lambda(lambda image: image * 2.0 - 1.0),  # the course's _norm_advprop
        ]
    )

    def dataset(split: str) -> FileDataset:  # ImageFolder on the zoo's split
        files = source.splits[split]
        return FileDataset(files.paths, files.labels, "RGB", transform)

    model = efficientnet("efficientnet_b0", len(source.class_names), pretrained=False)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    train = DataLoader(dataset("train"), batch_size=16, shuffle=True)
    val = DataLoader(dataset("val"), batch_size=16)
    scores = fit_classifier(model, optimizer, train, val, epochs, start)
    return scores, time.perf_counter() - start
