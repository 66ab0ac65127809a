"""Logo data: class-per-folder images (e.g. `logo/` vs `others/`) or a procedural demo source."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import cv2
import numpy as np

from datamodules.common import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ImageClassificationDataModule,
    ImageSource,
)

# --- demo source: procedural posters with and without one fixed emblem ------------------------

CLASS_NAMES = ("logo", "others")

_SCALE = 2  # draw at twice the size, then downsample with INTER_AREA: antialiased edges
_BRAND = (235, 110, 25)  # the emblem's orange disc
_INK = (20, 40, 110)  # its dark-blue star and lettering
_WORDS = ("SALE", "OPEN", "NEW", "CAFE", "BAR", "SHOP", "50%", "HOT")


def _star(cx: float, cy: float, r: float) -> np.ndarray:
    """Five-pointed star polygon around (cx, cy)."""
    angles = np.pi / 2 + np.arange(10) * np.pi / 5
    radii = np.where(np.arange(10) % 2 == 0, r, 0.45 * r)
    return np.stack([cx + radii * np.cos(angles), cy - radii * np.sin(angles)], 1).astype(np.int32)


def _emblem(rng: np.random.Generator, side: int, decoy: bool) -> np.ndarray:
    """An RGBA patch: the brand emblem (orange disc, blue star, "ZOO"), or a look-alike decoy."""
    patch = np.zeros((side, side, 4), np.uint8)
    c, r = side // 2, int(side * 0.3)
    jitter = rng.integers(-20, 21, 3)
    disc = tuple(int(v) for v in np.clip(np.array(_BRAND) + jitter, 0, 255)) + (255,)
    ink = _INK + (255,)
    if decoy:  # same layout, other colours and marks: "any disc with a star" is not enough
        disc = tuple(int(v) for v in rng.integers(0, 256, 3)) + (255,)
        ink = tuple(int(v) for v in rng.integers(0, 256, 3)) + (255,)
    cv2.circle(patch, (c, int(c * 0.8)), r, disc, -1, cv2.LINE_AA)
    if decoy and rng.random() < 0.5:
        half = int(r * 0.5)
        cv2.rectangle(
            patch, (c - half, int(c * 0.8) - half), (c + half, int(c * 0.8) + half), ink, -1
        )
    else:
        cv2.fillPoly(patch, [_star(c, c * 0.8, r * 0.7)], ink, cv2.LINE_AA)
    word = str(rng.choice(_WORDS)) if decoy else "ZOO"
    scale = side / 90
    (w, _), _ = cv2.getTextSize(word, cv2.FONT_HERSHEY_DUPLEX, scale, max(1, side // 40))
    cv2.putText(
        patch,
        word,
        (c - w // 2, int(side * 0.95)),
        cv2.FONT_HERSHEY_DUPLEX,
        scale,
        ink,
        max(1, side // 40),
        cv2.LINE_AA,
    )
    return patch


def _paste(canvas: np.ndarray, patch: np.ndarray, rng: np.random.Generator) -> None:
    """Alpha-blend `patch`, scaled, rotated and placed at random, onto `canvas` in place."""
    side = canvas.shape[0]
    target = int(side * rng.uniform(0.3, 0.6))
    angle = rng.uniform(-25, 25)
    matrix = cv2.getRotationMatrix2D(
        (patch.shape[1] / 2, patch.shape[0] / 2), angle, target / patch.shape[0]
    )
    matrix[:, 2] += rng.uniform(0, side - target, 2) - (patch.shape[0] - target) / 2
    warped = cv2.warpAffine(patch, matrix, (side, side), flags=cv2.INTER_LINEAR)
    alpha = warped[..., 3:4].astype(np.float32) / 255
    canvas[:] = (canvas * (1 - alpha) + warped[..., :3] * alpha).astype(np.uint8)


def _poster(rng: np.random.Generator, side: int) -> np.ndarray:
    """A procedural poster background: gradient, shapes, stripes, words."""
    top, bottom = rng.integers(0, 256, (2, 3)).astype(np.float32)
    ramp = np.linspace(0, 1, side, dtype=np.float32)[:, None, None]
    canvas = np.ascontiguousarray(
        (top * (1 - ramp) + bottom * ramp).repeat(side, 1).astype(np.uint8)
    )
    if rng.random() < 0.3:  # stripes
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        step = int(rng.integers(side // 10, side // 4))
        for x in range(0, 2 * side, step):
            cv2.line(canvas, (x, 0), (x - side, side), colour, max(1, step // 3), cv2.LINE_AA)
    for _ in range(rng.integers(2, 6)):
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        x, y = (int(v) for v in rng.integers(0, side, 2))
        size = int(rng.integers(side // 12, side // 3))
        if rng.random() < 0.5:
            cv2.circle(canvas, (x, y), size, colour, -1, cv2.LINE_AA)
        else:
            cv2.rectangle(canvas, (x, y), (x + size, y + size // 2), colour, -1)
    for _ in range(rng.integers(0, 3)):
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        org = (int(rng.integers(0, side // 2)), int(rng.integers(side // 5, side)))
        cv2.putText(
            canvas,
            str(rng.choice(_WORDS)),
            org,
            cv2.FONT_HERSHEY_SIMPLEX,
            side / rng.uniform(120, 220),
            colour,
            max(1, side // 60),
            cv2.LINE_AA,
        )
    return canvas


def make_logos(num_per_class: int, size: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`num_per_class` posters with the emblem ("logo") and without it ("others"), seeded.

    Returns (uint8 (N, size, size, 3) RGB, int64 labels (N,)). Posters without the emblem carry
    look-alike decoys half of the time, so the model has to learn the emblem itself.
    """
    rng = np.random.default_rng(seed)
    side, images, labels = size * _SCALE, [], []
    for label in (0, 1):
        for _ in range(num_per_class):
            canvas = _poster(rng, side)
            if label == 0 or rng.random() < 0.5:
                _paste(canvas, _emblem(rng, side, decoy=label == 1), rng)
            noise = rng.normal(0, rng.uniform(0, 8), canvas.shape)
            canvas = np.clip(canvas * rng.uniform(0.7, 1.2) + noise, 0, 255).astype(np.uint8)
            images.append(cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA))
            labels.append(label)
    return np.stack(images), np.array(labels, dtype=np.int64)


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

    Args:
        root: Data location; None uses the synthetic demo source.
        batch_size: Images per batch.
        num_workers: DataLoader worker processes.
        val_split: Fraction of train held out when the data has no validation split.
        seed: Seed for the split and the demo generator.
        predict_path: Image file(s) or folder to predict on; default the validation split. A
            folder of class sub-folders (e.g. `val/`) gives the true labels too.
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
