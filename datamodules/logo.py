"""Logo data: class-per-folder images (e.g. `logo/` vs `others/`) or a procedural demo source."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np

from datamodules.common import ImageClassificationDataModule, ImageSource, Split

CLASS_NAMES = ("logo", "others")


def make_logos(num_per_class: int, size: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """TEMPORARY stand-in."""
    import cv2

    rng = np.random.default_rng(seed)
    images, labels = [], []
    for label in (0, 1):
        for _ in range(num_per_class):
            image = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
            if label == 0:
                c = tuple(int(v) for v in rng.integers(size // 4, 3 * size // 4, 2))
                cv2.circle(image, c, size // 6, (255, 0, 0), -1)
            images.append(image)
            labels.append(label)
    return np.stack(images), np.array(labels, dtype=np.int64)


# Pretrained torchvision EfficientNets expect ImageNet statistics; AdvProp-trained weights expect
# inputs scaled to [-1, 1].
NORMALIZATION = {
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "advprop": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
}


class LogoDataModule(ImageClassificationDataModule):
    """Posters and photos, labelled by whether (or which) logo they contain.

    `root` is a class-per-folder tree: `root/train/<class>/*` (e.g. `logo/`, `others/`; any
    number of classes, at least two), `root/val/<class>/*` (else a seeded `val_split` of train),
    optional `root/test/`. Without `root`, a seeded synthetic demo is used: one fixed emblem
    pasted on procedural posters vs. the same kind of posters without it (not real data).

    Args:
        root: Data location; None uses the synthetic demo source.
        batch_size: Images per batch.
        num_workers: DataLoader worker processes.
        val_split: Fraction of train held out when the data has no validation split.
        seed: Seed for the split and the demo generator.
        predict_path: Image file(s) or folder to predict on; default the validation split.
        image_size: Side of the square model input (224 for EfficientNet-B0).
        normalization: "imagenet" mean/std, or "advprop" scaling to [-1, 1].
        demo_per_class: Demo training images per class (val and test get a quarter each).
    """

    def __init__(
        self,
        root: str | None = None,
        batch_size: int = 32,
        num_workers: int = 0,
        val_split: float = 0.2,
        seed: int = 0,
        predict_path: str | list[str] | None = None,
        image_size: int = 224,
        normalization: Literal["imagenet", "advprop"] = "imagenet",
        demo_per_class: int = 600,
    ) -> None:
        super().__init__(
            root, batch_size, num_workers, val_split, seed, predict_path, image_size, demo_per_class
        )
        self.save_hyperparameters()
        if normalization not in NORMALIZATION:
            raise ValueError(
                f"normalization must be 'imagenet' or 'advprop', got {normalization!r}"
            )
        self.mean, self.std = NORMALIZATION[normalization]

    def read_demo(self) -> ImageSource:
        """Seeded synthetic posters with and without the emblem."""
        splits = {}
        counts = (self.demo_per_class, self.demo_per_class // 4, self.demo_per_class // 4)
        for offset, (split, count) in enumerate(zip(("train", "val", "test"), counts, strict=True)):
            images, labels = make_logos(max(count, 1), self.image_size, self.seed + offset)
            names = [f"demo/{split}/{i:05d}" for i in range(len(labels))]
            splits[split] = Split(labels.tolist(), names, images=images)
        return ImageSource(list(CLASS_NAMES), splits, 3, "demo (synthetic posters, not real logos)")

    def read_root(self) -> ImageSource:
        """Class folders; logo images are always read as RGB."""
        source = super().read_root()
        source.channels = 3
        return source

    def train_transform(self) -> Callable:
        """Random resized crops that keep most of the image, then the eval transform."""
        from torchvision.transforms import v2

        return v2.Compose(
            [
                v2.RandomResizedCrop(self.image_size, scale=(0.6, 1.0), antialias=True),
                self.eval_transform(),
            ]
        )
