"""Segmentation masks: the ignore value, the VOC palette, mask files and how their values decode.

Masks are class-index images: 0 background, 1.. the classes, 255 ignored (VOC's object border).
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from lightning.pytorch.utilities import rank_zero_only
from PIL import Image
from rich.progress import track

from datamodules.images import Skipped, image_info

IGNORE_INDEX = 255  # VOC's "border / don't care" value, also labelme's `__ignore__`


def voc_colormap(n: int = 256) -> np.ndarray:
    """The PASCAL VOC palette (n, 3) uint8: 0 black, 1 (128, 0, 0), 2 (0, 128, 0), ..."""
    ids = np.arange(n)
    cmap = np.zeros((n, 3), dtype=np.int64)
    for bit in range(8):
        for channel in range(3):
            cmap[:, channel] |= ((ids >> (3 * bit + channel)) & 1) << (7 - bit)
    return cmap.astype(np.uint8)


MaskKind = Literal["index", "binary255", "trimap"]


def read_mask(path: Path) -> tuple[np.ndarray, str]:
    """A mask file as raw values (H, W) uint8, and "P" (class indices) or "L" (grey levels).

    Palette PNGs give their indices. Colour masks (RGB, RGBA, CMYK) painted in the VOC palette
    are mapped back to indices; grey colour masks give their grey level.

    Raises:
        OSError: The file cannot be decoded.
        ValueError: Colours outside the VOC palette, values above 255, or a size PIL refuses.
    """
    try:
        with Image.open(path) as image:
            mode = image.mode
            colour = len(image.getbands()) >= 3
            array = np.asarray(image.convert("RGB") if colour else image)
    except Image.DecompressionBombError as error:
        raise ValueError(f"Mask {path}: {error} Export the mask at its image's size.") from error
    except OSError as error:
        raise OSError(f"Cannot decode mask {path}: {error}. Remove or replace the file.") from error
    if array.ndim == 3 and mode == "LA":
        array = array[..., 0]
    if array.ndim == 3:
        if (array == array[..., :1]).all():
            return array[..., 0].copy(), "L"
        return _colors_to_index(array, path), "P"
    if array.dtype != np.uint8:
        if array.size and (array.min() < 0 or array.max() > 255):
            raise ValueError(
                f"Mask {path} has values up to {array.max()}: masks hold class indices 0-255. "
                "Save it as an 8-bit (L or P mode) PNG."
            )
        array = array.astype(np.uint8)
    return array, "P" if mode == "P" else "L"


@functools.cache
def _palette_codes() -> tuple[np.ndarray, np.ndarray]:
    """VOC palette colours as sorted 24-bit codes, and the palette index of each."""
    palette = voc_colormap().astype(np.int64)
    codes = (palette[:, 0] << 16) | (palette[:, 1] << 8) | palette[:, 2]
    order = np.argsort(codes)
    return codes[order], order


def _colors_to_index(array: np.ndarray, path: Path) -> np.ndarray:
    rgb = array.astype(np.int64)
    codes = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    sorted_codes, order = _palette_codes()
    position = np.searchsorted(sorted_codes, codes).clip(max=len(sorted_codes) - 1)
    found = sorted_codes[position] == codes
    if not found.all():
        y, x = np.argwhere(~found)[0]
        colour = tuple(array[y, x].tolist())  # plain ints: numpy 2 shows np.uint8(128)
        raise ValueError(
            f"Mask {path} has colour {colour} at (x={x}, y={y}), which is not in the "
            "VOC palette. Save masks as palette ('P' mode) or grey class-index PNGs; JPEG "
            "compression changes colours."
        )
    return order[position].astype(np.uint8)


@dataclass(frozen=True)
class MaskFormat:
    """How raw mask values map to class ids.

    `index`: values are the ids, 255 is ignored. `binary255`: 0/255 masks, 255 is the
    foreground. `trimap`: Oxford-IIIT Pet's 1 pet, 2 background, 3 border (ignored).
    """

    kind: MaskKind
    num_classes: int

    @functools.cached_property
    def lut(self) -> np.ndarray:
        """Raw value -> class id (or IGNORE_INDEX); -1 marks values outside the label set."""
        lut = np.full(256, -1, np.int16)
        if self.kind == "index":
            lut[: self.num_classes] = np.arange(self.num_classes)
            lut[IGNORE_INDEX] = IGNORE_INDEX
        elif self.kind == "binary255":
            lut[0], lut[255] = 0, 1
        else:
            lut[1], lut[2], lut[3] = 1, 0, IGNORE_INDEX
        return lut

    def describe(self) -> str:
        """One line for the data audit."""
        return {
            "index": f"class-index masks: values 0-{self.num_classes - 1} are the classes, "
            f"{IGNORE_INDEX} is ignored (VOC's object border)",
            "binary255": "binary 0/255 masks: 255 is read as the foreground class (1)",
            "trimap": "Oxford-IIIT Pet trimaps: 1 pet, 2 background, 3 border (ignored)",
        }[self.kind]

    def decode(self, raw: np.ndarray, path: Path | str) -> np.ndarray:
        """Class ids (H, W) uint8 of a raw mask; fails naming the file on unknown values."""
        ids = self.lut[raw]
        if (ids < 0).any():
            bad = np.unique(raw[ids < 0])[:8].tolist()
            raise ValueError(
                f"Mask {path} has value(s) {bad} outside the label set ({self.describe()}). Fix "
                "the mask, or list every class (class_names, or class_names.txt in the root)."
            )
        return ids.astype(np.uint8)


def decide_format(modes: Counter, values: set[int], num_classes: int) -> MaskFormat:
    """Class indices, unless grey masks hold only 0 and 255 in a binary task: then 0/255 masks.

    Decided once for the whole dataset: a VOC mask with only background and border (0, 255)
    must not read as a cat-shaped border.
    """
    binary = num_classes == 2 and "P" not in modes and IGNORE_INDEX in values <= {0, 255}
    return MaskFormat("binary255" if binary else "index", num_classes)


@dataclass
class MaskScan:
    """What the audit learned from one pass over a split's masks."""

    pairs: list[tuple[Path, Path]] = field(default_factory=list)  # readable, same size
    values: list[np.ndarray] = field(default_factory=list)  # distinct raw values per mask
    histogram: np.ndarray = field(default_factory=lambda: np.zeros(256, np.int64))
    modes: Counter = field(default_factory=Counter)
    sizes: list[tuple[int, int]] = field(default_factory=list)


def scan_pairs(pairs: Sequence[tuple[Path, Path]], skipped: Skipped, where: str) -> MaskScan:
    """Read every mask once (images only to their header, for the size); skip unreadable files.

    Raises:
        ValueError: A mask's size differs from its image's.
    """
    scan, mismatched = MaskScan(), []
    quiet = len(pairs) < 200 or rank_zero_only.rank != 0
    for image_path, mask_path in track(pairs, f"Auditing {where}", disable=quiet, transient=True):
        info = image_info(image_path)
        if info is None:
            skipped.unreadable.append(image_path)
            continue
        try:
            raw, mode = read_mask(mask_path)
        except OSError:
            skipped.unreadable.append(mask_path)
            continue
        if raw.shape != info[0][::-1]:
            mismatched.append((image_path, info[0], mask_path, raw.shape[::-1]))
            continue
        counts = np.bincount(raw.ravel(), minlength=256)
        scan.pairs.append((image_path, mask_path))
        scan.values.append(np.flatnonzero(counts).astype(np.uint8))
        scan.histogram += counts
        scan.modes[mode] += 1
        scan.sizes.append(info[0])
    if mismatched:
        lines = "\n".join(
            f"  {i} is {a[0]}x{a[1]}, {m} is {b[0]}x{b[1]}" for i, a, m, b in mismatched[:5]
        )
        raise ValueError(
            f"{len(mismatched)} mask(s) in {where} differ in size from their image:\n{lines}\n"
            "Masks must be pixel-aligned with their images: export each mask at its image's size."
        )
    return scan


def check_values(scan: MaskScan, mask_format: MaskFormat) -> None:
    """Fail naming the masks whose values are outside the label set."""
    bad = [
        (mask, values[mask_format.lut[values] < 0].tolist())
        for (_, mask), values in zip(scan.pairs, scan.values, strict=True)
        if (mask_format.lut[values] < 0).any()
    ]
    if bad:
        lines = "\n".join(f"  {mask}: value(s) {values}" for mask, values in bad[:5])
        raise ValueError(
            f"{len(bad)} mask(s) have values outside the label set ({mask_format.describe()}):"
            f"\n{lines}\nFix the masks, or list every class (class_names, or class_names.txt "
            "in the data root)."
        )
