"""Logo data: class-per-folder images (e.g. `logo/` vs `others/`) or a procedural demo source."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from datamodules.common import IMAGENET_MEAN, IMAGENET_STD
from datamodules.image_classification import ImageClassificationDataModule, ImageSource

# Pretrained torchvision EfficientNets expect ImageNet statistics; AdvProp-trained weights expect
# inputs scaled to [-1, 1].
NORMALIZATION = {
    "imagenet": (IMAGENET_MEAN, IMAGENET_STD),
    "advprop": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
}


class LogoDataModule(ImageClassificationDataModule):
    """Posters and photos, labelled by whether (or which) logo they contain.

    `root` is a class-per-folder tree: `root/train/<class>/*` (e.g. `logo/`, `others/`; any
    number of classes, at least two), `root/val/<class>/*` (else a seeded `val_split` of train),
    optional `root/test/`. Without `root`, a seeded synthetic demo is used: one fixed emblem
    pasted on procedural posters vs. the same kind of posters without it (not real data).
    The other arguments are `ImageClassificationDataModule`'s.

    Args:
        image_size: Side of the square model input (224 for EfficientNet-B0).
        normalization: "imagenet" mean/std, or "advprop" scaling to [-1, 1].
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
        if normalization not in NORMALIZATION:
            raise ValueError(
                f"normalization must be 'imagenet' or 'advprop', got {normalization!r}"
            )
        self.mean, self.std = NORMALIZATION[normalization]

    @property
    def num_channels(self) -> int:
        """Logos are read as RGB (EfficientNet's input), whatever the files hold."""
        return 3

    def read_demo(self) -> ImageSource:
        """Seeded synthetic posters with and without the emblem."""
        from datamodules.demo.posters import CLASS_NAMES, make_logos  # OpenCV, only for the demo

        return self.demo_source(make_logos, CLASS_NAMES, "demo (synthetic posters, not real logos)")

    def train_transform(self) -> Callable:
        """Random resized crops that keep most of the image, then the eval transform."""
        from torchvision.transforms import v2

        return v2.Compose(
            [
                v2.RandomResizedCrop(self.image_size, scale=(0.6, 1.0), antialias=True),
                self.eval_transform(),
            ]
        )
