"""Face-expression data: mouth-region crops from class folders, the FER2013 CSV, or a demo source.

Face photos become mouth crops with `zoo prepare mouths` (`datamodules/prepare/mouths.py`).
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from lightning.pytorch.utilities import rank_zero_warn

from datamodules.image_classification import ImageClassificationDataModule, ImageSource, Split

FER2013_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
FER2013_SPLITS = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
FER2013_SIDE = 48


class FaceExpressionDataModule(ImageClassificationDataModule):
    """Mouth-region crops labelled by expression.

    `root` may be a class-per-folder tree (`root/train/<class>/*`, `root/val/<class>/*`, optional
    `root/test/`; without `val/` a seeded `val_split` of train is held out), or the FER2013 CSV
    (`emotion,pixels,Usage`; a folder holding `fer2013.csv` works too). Without `root` a procedural,
    seeded demo set of synthetic mouth crops is used (it is not real data).
    The other arguments are `ImageClassificationDataModule`'s.

    Args:
        grayscale: Force 1-channel (True) or RGB (False) input; None decides from the data.
    """

    # Inputs are scaled to [0, 1] and then to [-1, 1], for any number of channels.
    mean, std = (0.5,), (0.5,)

    def __init__(
        self,
        root: str | None = None,
        batch_size: int = 64,
        num_workers: int = 0,
        val_split: float = 0.2,
        seed: int = 0,
        predict_path: str | list[str] | None = None,
        image_size: int = 48,
        grayscale: bool | None = None,
        demo_per_class: int = 600,
    ) -> None:
        super().__init__(
            root, batch_size, num_workers, val_split, seed, predict_path, image_size, demo_per_class
        )
        self.grayscale = grayscale

    @property
    def num_channels(self) -> int:
        """1 for grayscale input, 3 for RGB: the checkpoint's, else `grayscale`, else the data's."""
        if self.grayscale is None or "num_channels" in self.model_facts:
            return super().num_channels
        return 1 if self.grayscale else 3

    def read_demo(self) -> ImageSource:
        """Seeded synthetic mouth crops: train, and a quarter as many for val and test."""
        from datamodules.demo.mouths import CLASS_NAMES, make_mouths  # OpenCV, only for the demo

        return self.demo_source(make_mouths, CLASS_NAMES, "demo (synthetic mouths, not real faces)")

    def read_root(self) -> ImageSource:
        """FER2013 CSV when `root` is (or holds) one, else class folders."""
        csv_path = self.root / "fer2013.csv" if self.root.is_dir() else self.root
        if csv_path.suffix.lower() == ".csv" and csv_path.is_file():
            return self._read_fer2013(csv_path)
        return super().read_root()

    def _read_fer2013(self, path: Path) -> ImageSource:
        rows: dict[str, tuple[list[np.ndarray], list[int], list[str]]] = {}
        bad: list[str] = []
        # Bad bytes become U+FFFD and fail their row's parse below; a byte-order mark is dropped.
        with path.open(encoding="utf-8-sig", errors="replace", newline="") as handle:
            reader = csv.DictReader(handle, strict=True)
            try:
                missing = {"emotion", "pixels"} - set(reader.fieldnames or ())
                if missing:
                    raise ValueError(
                        f"{path} lacks column(s) {sorted(missing)}; FER2013 CSVs have the "
                        "header 'emotion,pixels,Usage' (Usage optional)."
                    )
                for row in reader:
                    self._add_fer2013_row(row, f"{path.name}:{reader.line_num}", rows, bad)
            except csv.Error as error:
                raise ValueError(
                    f"{path}:{reader.line_num}: malformed CSV ({error}). FER2013 rows are "
                    "'<emotion 0-6>,\"<2304 pixel values>\",<Usage>'."
                ) from error
        if bad:
            rank_zero_warn(
                f"Skipped {len(bad)} FER2013 row(s) with an unknown emotion/Usage or not "
                f"{FER2013_SIDE}x{FER2013_SIDE} pixels in {path}: {', '.join(bad[:5])}"
                + (" ..." if len(bad) > 5 else "")
            )
        if "train" not in rows:
            raise ValueError(f"{path} has no usable 'Training' rows.")
        splits = {s: Split(lab, nam, images=np.stack(img)) for s, (img, lab, nam) in rows.items()}
        return ImageSource(
            list(FER2013_CLASSES), self.hold_out_val(splits), 1, f"FER2013 CSV {path}"
        )

    @staticmethod
    def _add_fer2013_row(
        row: dict[str | None, Any],
        source: str,
        rows: dict[str, tuple[list[np.ndarray], list[int], list[str]]],
        bad: list[str],
    ) -> None:
        """Add one CSV row to its split in `rows`, or its source to `bad`."""
        split = FER2013_SPLITS.get(row.get("Usage") or "Training")
        try:
            label = int(row["emotion"])
            pixels = np.array(row["pixels"].split(), dtype=np.uint8)
        except (ValueError, AttributeError, OverflowError):  # not numbers, missing, > 255
            pixels, label = None, -1
        if (
            split is None
            or None in row  # more fields than the header
            or pixels is None
            or pixels.size != FER2013_SIDE**2
            or not (0 <= label < len(FER2013_CLASSES))
        ):
            bad.append(source)
            return
        images, labels, names = rows.setdefault(split, ([], [], []))
        images.append(pixels.reshape(FER2013_SIDE, FER2013_SIDE, 1))
        labels.append(label)
        names.append(source)

    def train_transform(self) -> Callable:
        """Small crops, flips and lighting changes, then the eval transform."""
        from torchvision.transforms import v2

        return v2.Compose(
            [
                v2.RandomResizedCrop(self.image_size, scale=(0.8, 1.0), ratio=(0.9, 1.1)),
                v2.RandomHorizontalFlip(),  # mouths are left-right symmetric
                v2.ColorJitter(brightness=0.2, contrast=0.2),
                self.eval_transform(),
            ]
        )
