"""Cat segmentation data: VOC-style folders, Oxford-IIIT Pet, labelme conversion, a procedural demo.

Masks are class-index images: 0 background, 1.. the classes, 255 ignored (VOC's object border).
Images and masks are read lazily; the data audit scans the masks once to say what it found.
"""

from __future__ import annotations

import base64
import functools
import io
import json
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.utilities import rank_zero_only, rank_zero_warn
from PIL import Image, ImageDraw, ImageOps
from rich.progress import track
from torch.utils.data import DataLoader, Dataset

from datamodules.common import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Skipped,
    check_model_classes,
    eval_transform,
    image_info,
    is_image_file,
    load_image,
    make_loader,
    readable_images,
    size_summary,
    split_indices,
)

IGNORE_INDEX = 255  # VOC's "border / don't care" value, also labelme's `__ignore__`
CLASS_NAMES = ("background", "cat")
MASK_FOLDERS = ("SegmentationClassPNG", "SegmentationClass")  # labelme2voc's, then VOC's own


def voc_colormap(n: int = 256) -> np.ndarray:
    """The PASCAL VOC palette (n, 3) uint8: 0 black, 1 (128, 0, 0), 2 (0, 128, 0), ..."""
    ids = np.arange(n)
    cmap = np.zeros((n, 3), dtype=np.int64)
    for bit in range(8):
        for channel in range(3):
            cmap[:, channel] |= ((ids >> (3 * bit + channel)) & 1) << (7 - bit)
    return cmap.astype(np.uint8)


# --- demo source: procedural cats on textured backgrounds ------------------------------------

_FURS = (
    (226, 132, 48),
    (128, 128, 132),
    (44, 40, 42),
    (236, 230, 218),
    (140, 92, 58),
    (222, 196, 150),
)


def _noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Smooth noise in [0, 1] (size, size): a random `cells` x `cells` grid, upsampled."""
    grid = Image.fromarray((rng.random((cells, cells)) * 255).astype(np.uint8))
    return np.asarray(grid.resize((size, size), Image.BICUBIC), np.float32) / 255.0


def _texture(rng: np.random.Generator, size: int, color: np.ndarray) -> np.ndarray:
    """(size, size, 3) float: a base colour with stripes (a tabby) or blotches, and grain."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    angle, period = rng.uniform(0, np.pi), rng.uniform(0.05, 0.15)
    stripes = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) / period * 2 * np.pi)
    pattern = rng.uniform(0.1, 0.35) * stripes if rng.random() < 0.5 else 0.0
    shade = 1.0 + pattern + 0.4 * (_noise(rng, size, rng.integers(3, 8)) - 0.5)
    grain = rng.normal(0, 8, (size, size, 3))
    return color * shade[..., None] + grain


def _ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 24) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], 1)


def _cat_parts(rng: np.random.Generator) -> tuple[list[np.ndarray], np.ndarray, float]:
    """A cat in its own frame (body length ~1, facing +x, y down): polygons, tail, tail width."""
    body_h = rng.uniform(0.32, 0.45)
    head_r = rng.uniform(0.17, 0.24)
    hx, hy = rng.uniform(0.42, 0.55), -body_h * rng.uniform(0.4, 0.85)  # at the front, on the body
    ear = head_r * rng.uniform(0.6, 0.9)
    parts = [_ellipse(0.0, 0.0, 0.5, body_h / 2), _ellipse(hx, hy, head_r, head_r * 0.9)]
    for side in (-1, 1):  # two triangular ears on top of the head
        base = hx + side * head_r * 0.55
        parts.append(
            np.array(
                [
                    [base - 0.35 * ear, hy - head_r * 0.55],
                    [base + 0.35 * ear, hy - head_r * 0.55],
                    [base + side * 0.15 * ear, hy - head_r * 0.55 - ear],
                ]
            )
        )
    leg_w, leg_h = 0.07, body_h * rng.uniform(0.6, 1.0)
    for x in (-0.35, -0.2, 0.22, 0.36):  # four legs below the body
        x += rng.uniform(-0.04, 0.04)
        parts.append(np.array([[x, 0], [x + leg_w, 0], [x + leg_w, leg_h], [x, leg_h]]))
    # The tail: a curve from the back, up or down.
    t = np.linspace(0, 1, 8)
    bend = rng.uniform(-0.6, 0.6)
    length = rng.uniform(0.4, 0.7)
    tail = np.stack([-0.45 - length * t, -0.05 - bend * np.sin(t * np.pi * 0.8) * length], 1)
    return parts, tail, rng.uniform(0.05, 0.08)


def _draw_cat(rng: np.random.Generator, size: int) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """The mask (size, size) bool of a randomly posed cat, and where its eyes are."""
    parts, tail, tail_w = _cat_parts(rng)
    scale = size * rng.uniform(0.35, 0.65)  # body length; the tail may leave the frame
    angle = rng.uniform(-0.5, 0.5)
    flip = 1 if rng.random() < 0.5 else -1
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    centre = rng.uniform(0.3, 0.7, 2) * size

    def place(points: np.ndarray) -> list[tuple[float, float]]:
        xy = (points * [flip, 1]) @ rotation.T * scale + centre
        return [tuple(p) for p in xy]

    canvas = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(canvas)
    for polygon in parts:
        draw.polygon(place(polygon), fill=1)
    draw.line(place(tail), fill=1, width=max(1, round(tail_w * scale)), joint="curve")
    head = parts[1].mean(axis=0)
    eyes = place(np.array([head + [0.06, -0.02], head + [-0.06, -0.02]]))
    return np.asarray(canvas, bool), eyes


def make_cats(count: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` synthetic photos (N, size, size, 3) uint8 and exact masks (N, size, size) uint8.

    Each image has one cat (body, head, ears, legs, tail; posed, scaled, flipped, striped or
    blotched fur in a random coat) on a textured background with look-alike distractors (fur-
    textured ellipses and discs without a cat's shape): colour or texture alone is not enough.
    """
    rng = np.random.default_rng(seed)
    images = np.empty((count, size, size, 3), np.uint8)
    masks = np.empty((count, size, size), np.uint8)
    for i in range(count):
        base = rng.uniform(40, 220, 3)
        gradient = np.linspace(-1, 1, size)[:, None, None] * rng.uniform(-40, 40, 3)
        background = _texture(rng, size, base) + gradient
        for _ in range(rng.integers(1, 4)):  # distractors: blobs with cat-like fur
            blob = Image.new("L", (size, size), 0)
            (cx, cy), r = rng.uniform(0, size, 2), rng.uniform(0.08, 0.22) * size
            ImageDraw.Draw(blob).ellipse(
                [cx - r, cy - r * rng.uniform(0.5, 1.0), cx + r, cy + r * rng.uniform(0.5, 1.0)],
                fill=1,
            )
            fur = np.array(_FURS[rng.integers(len(_FURS))]) + rng.normal(0, 15, 3)
            inside = np.asarray(blob, bool)
            background[inside] = _texture(rng, size, fur)[inside]
        mask, eyes = _draw_cat(rng, size)
        fur = np.array(_FURS[rng.integers(len(_FURS))]) + rng.normal(0, 15, 3)
        image = np.where(mask[..., None], _texture(rng, size, fur), background)
        image = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))
        eye_r = max(1.0, size / 80)
        for x, y in eyes:
            ImageDraw.Draw(image).ellipse(
                [x - eye_r, y - eye_r, x + eye_r, y + eye_r], (30, 90, 30)
            )
        images[i], masks[i] = np.asarray(image), mask
    return images, masks


# --- labelme JSON -> VOC layout (`zoo prepare labelme`) ------------------------------------------

IGNORE_LABEL = "__ignore__"
BACKGROUND = "_background_"
LINE_WIDTH = 10  # labelme's shape_to_mask defaults for line/linestrip and point shapes
POINT_RADIUS = 5
# points per shape_type (labelme asserts these counts); polygons and linestrips take more
_MIN_POINTS = dict(polygon=3, rectangle=2, circle=2, line=2, linestrip=2, point=1, mask=2)
_OPEN_ENDED = {"polygon", "linestrip"}


class _SkipError(Exception):
    """A JSON file that is counted as skipped instead of stopping the run."""


def read_label_file(path: Path) -> list[str]:
    """Read a labelme labels.txt and return the class names, index = class id.

    The file holds an optional `__ignore__` line, then `_background_`, then one class per line.
    The returned list leaves out `__ignore__`, so `_background_` is class 0.
    """
    path = Path(path)
    if not path.is_file():
        msg = f"{path}: labels file not found. Write `{BACKGROUND}`, then one class per line."
        raise FileNotFoundError(msg)
    # utf-8-sig: labels files saved by Windows editors often start with a BOM
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    names = [line.strip() for line in lines if line.strip()]
    if names[:1] == [IGNORE_LABEL]:
        names = names[1:]
    if not names or names[0] != BACKGROUND:
        msg = f"{path}: the first class must be `{BACKGROUND}` (after optional `{IGNORE_LABEL}`)."
        raise ValueError(f"{msg} Add it at the top of the file.")
    if IGNORE_LABEL in names:
        raise ValueError(f"{path}: `{IGNORE_LABEL}` may only appear as the very first line.")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"{path}: duplicate class names {duplicates}; list each class once.")
    if len(names) < 2:
        raise ValueError(f"{path}: add at least one class name after `{BACKGROUND}`.")
    if len(names) > IGNORE_INDEX:
        raise ValueError(f"{path}: at most {IGNORE_INDEX} classes fit next to the ignore value.")
    return names


def _mask_bitmap(shape: dict, source: str) -> Image.Image:
    """Decode a labelme "mask" shape's base64 PNG into an "L" paste mask (255 = set)."""
    try:
        raw = base64.b64decode(shape["mask"])
        bitmap = np.asarray(Image.open(io.BytesIO(raw)))
    except (KeyError, TypeError, ValueError, OSError) as exc:
        raise ValueError(f"{source}: cannot decode the bitmap of a 'mask' shape ({exc}).") from exc
    if bitmap.ndim == 3:
        bitmap = bitmap.any(axis=2)
    return Image.fromarray((bitmap != 0).astype(np.uint8) * 255)


def shapes_to_mask(
    shapes: list[dict], height: int, width: int, class_ids: dict[str, int], source: str
) -> np.ndarray:
    """Draw labelme shapes, in order, into an (H, W) uint8 class-index mask.

    Later shapes overwrite earlier ones; label `__ignore__` paints IGNORE_INDEX. Drawing follows
    labelme's `shape_to_mask` (PIL ImageDraw, fill and outline), so masks match labelme2voc.
    """
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    for shape in shapes:
        label = shape.get("label")
        if label == IGNORE_LABEL:
            value = IGNORE_INDEX
        elif label in class_ids:
            value = class_ids[label]
        else:
            raise ValueError(
                f"{source}: label {label!r} is not in the labels file "
                f"({', '.join(sorted(class_ids))}). Add it to labels.txt or fix the annotation."
            )
        kind = shape.get("shape_type") or "polygon"
        if kind not in _MIN_POINTS:
            raise ValueError(f"{source}: shape_type {kind!r} (label {label!r}) is not supported.")
        try:
            xy = [(float(x), float(y)) for x, y in shape["points"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{source}: {kind} {label!r} has malformed points.") from exc
        need = _MIN_POINTS[kind]
        if len(xy) < need or (len(xy) > need and kind not in _OPEN_ENDED):
            need_text = f"at least {need}" if kind in _OPEN_ENDED else str(need)
            raise ValueError(f"{source}: {kind} {label!r} needs {need_text} points, got {len(xy)}.")
        if kind == "polygon":
            draw.polygon(xy, fill=value, outline=value)
        elif kind in ("rectangle", "mask"):
            # labelme lets the drag start at any corner; PIL needs top-left first
            (x0, y0), (x1, y1) = xy
            box = (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
            if kind == "rectangle":
                draw.rectangle(box, fill=value, outline=value)
            else:
                canvas.paste(value, (int(box[0]), int(box[1])), _mask_bitmap(shape, source))
        elif kind in ("circle", "point"):
            cx, cy = xy[0]
            r = math.dist(xy[0], xy[1]) if kind == "circle" else POINT_RADIUS
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=value, outline=value)
        else:
            draw.line(xy, fill=value, width=LINE_WIDTH)
    return np.array(canvas, dtype=np.uint8)


@dataclass
class LabelmeReport:
    """What `convert_labelme` did."""

    converted: list[Path]
    failed: dict[Path, str]
    class_names: list[str]
    pixel_counts: list[int]
    ignored_pixels: int
    dst: Path | None = None

    def summary(self) -> str:
        """Return a short human-readable summary."""
        total = max(sum(self.pixel_counts) + self.ignored_pixels, 1)
        lines = [f"Converted {len(self.converted)} labelme file(s), skipped {len(self.failed)}."]
        lines += [f"  skipped {path}: {why}" for path, why in list(self.failed.items())[:5]]
        if len(self.failed) > 5:
            lines.append(f"  ... and {len(self.failed) - 5} more")
        lines.append("Pixel share per class:")
        for name, count in zip(self.class_names, self.pixel_counts, strict=True):
            lines.append(f"  {name:<24}{count / total:8.2%}")
        lines.append(f"  {IGNORE_LABEL:<24}{self.ignored_pixels / total:8.2%}")
        if self.dst is not None:
            lines.append(f"Wrote JPEGImages/, SegmentationClassPNG/, class_names.txt in {self.dst}")
        return "\n".join(lines)


def _read_json(path: Path) -> dict[str, Any]:
    """Load a labelme JSON file or raise _SkipError."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _SkipError(f"not valid JSON ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("shapes"), list):
        raise _SkipError('not a labelme file (no "shapes" list)')
    return data


def _load_image(data: dict[str, Any], json_path: Path) -> Image.Image:
    """Decode the annotated image (imageData first, else imagePath) or raise _SkipError."""
    image_path = None
    if data.get("imageData"):
        origin = "imageData"
    elif data.get("imagePath"):
        # labelme on Windows writes backslash-separated relative paths
        image_path = json_path.parent / str(data["imagePath"]).replace("\\", "/")
        if not image_path.is_file():
            raise _SkipError(f"image not found: {image_path}")
        origin = str(image_path)
    else:
        raise _SkipError("neither imageData nor imagePath is set")
    try:
        raw = image_path.read_bytes() if image_path else base64.b64decode(data["imageData"])
        return ImageOps.exif_transpose(Image.open(io.BytesIO(raw))).convert("RGB")
    except (OSError, ValueError, TypeError, SyntaxError) as exc:  # binascii.Error is a ValueError
        raise _SkipError(f"cannot decode image from {origin} ({exc})") from exc


def _visualize(image: Image.Image, mask: np.ndarray, palette: np.ndarray) -> Image.Image:
    """Blend class colours at 30% over labelled (non-background) pixels."""
    rgb = np.asarray(image, dtype=np.float32)
    labelled = mask != 0
    rgb[labelled] = 0.7 * rgb[labelled] + 0.3 * palette[mask[labelled]]
    return Image.fromarray(rgb.round().astype(np.uint8))


def convert_labelme(
    src: Path, dst: Path, labels: Path, *, visualize: bool = True, progress: bool = True
) -> LabelmeReport:
    """Convert labelme annotations in `src` (*.json, recursive) to a VOC layout in `dst`.

    Unreadable JSON or a missing/undecodable image is a counted skip (`failed`); unknown labels,
    bad shapes, size disagreements and duplicate stems raise, since they mean wrong inputs.
    The output is written to a hidden folder next to `dst` and moved into place only when every
    file converted, so a failed run leaves `dst` as it was (absent, or with its old files).
    """
    import shutil
    import uuid

    src, dst = Path(src), Path(dst)
    class_names = read_label_file(Path(labels))
    if not src.is_dir():
        raise FileNotFoundError(f"{src}: folder not found. Pass the folder with labelme's *.json.")
    if dst.exists() and not dst.is_dir():
        raise NotADirectoryError(f"{dst}: exists and is not a folder. Pass an output folder.")
    json_files = sorted(src.rglob("*.json"))
    if not json_files:
        raise FileNotFoundError(f"{src}: no *.json files (searched recursively). Annotate first.")
    by_stem: dict[str, Path] = {}
    for path in json_files:
        if path.stem in by_stem:
            raise ValueError(
                f"{by_stem[path.stem]} and {path} share the name {path.stem!r}; VOC needs unique "
                "file stems, so rename one of them."
            )
        by_stem[path.stem] = path

    # Next to dst: the final move is a rename on one file system. mkdir, not tempfile.mkdtemp,
    # so dst gets the usual permissions instead of mkdtemp's owner-only 0o700.
    staging = dst.parent / f".{dst.name}.{uuid.uuid4().hex[:8]}.partial"
    staging.mkdir(parents=True)
    try:
        report = _convert_into(staging, json_files, class_names, visualize, progress)
        _move_into_place(staging, dst)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone already after a successful move
    report.dst = dst
    return report


def _convert_into(
    out: Path, json_files: list[Path], class_names: list[str], visualize: bool, progress: bool
) -> LabelmeReport:
    """Write the VOC layout of `json_files` into the empty folder `out`."""
    folders = ["JPEGImages", "SegmentationClassPNG"]
    folders += ["SegmentationClassVisualization"] if visualize else []
    for folder in folders:
        (out / folder).mkdir()
    (out / "class_names.txt").write_text("\n".join(class_names) + "\n", encoding="utf-8")

    class_ids = {name: i for i, name in enumerate(class_names)}
    palette = voc_colormap()
    counts = np.zeros(256, dtype=np.int64)
    report = LabelmeReport([], {}, class_names, [0] * len(class_names), 0)
    for path in track(json_files, description="labelme -> VOC", disable=not progress):
        try:
            data = _read_json(path)
            image = _load_image(data, path)
        except _SkipError as exc:
            report.failed[path] = str(exc)
            continue
        width, height = image.size
        declared = (data.get("imageHeight"), data.get("imageWidth"))
        if None not in declared and tuple(map(int, declared)) != (height, width):
            raise ValueError(
                f"{path}: imageHeight x imageWidth is {declared[0]} x {declared[1]} but the image "
                f"is {height} x {width}. Re-open and save it in labelme, or fix the sizes."
            )
        mask = shapes_to_mask(data["shapes"], height, width, class_ids, str(path))
        image.save(out / "JPEGImages" / f"{path.stem}.jpg", quality=95)
        png = Image.fromarray(mask)
        png.putpalette(palette.tobytes())
        png.save(out / "SegmentationClassPNG" / f"{path.stem}.png")
        if visualize:
            viz = _visualize(image, mask, palette)
            viz.save(out / "SegmentationClassVisualization" / f"{path.stem}.jpg", quality=95)
        counts += np.bincount(mask.ravel(), minlength=256)
        report.converted.append(path)
    report.pixel_counts = counts[: len(class_names)].tolist()
    report.ignored_pixels = int(counts[IGNORE_INDEX])
    return report


def _move_into_place(staging: Path, dst: Path) -> None:
    """Rename `staging` to `dst`, or move its files into an existing `dst` (same names replaced)."""
    if not dst.exists():
        staging.rename(dst)
        return
    for path in sorted(staging.rglob("*")):
        if path.is_file():
            target = dst / path.relative_to(staging)
            target.parent.mkdir(parents=True, exist_ok=True)
            path.replace(target)


# --- masks: reading, encodings, the audit scan -------------------------------------------------

MaskKind = Literal["index", "binary255", "trimap"]


def read_mask(path: Path) -> tuple[np.ndarray, str]:
    """A mask file as raw values (H, W) uint8, and "P" (class indices) or "L" (grey levels).

    Palette PNGs give their indices. RGB masks painted in the VOC palette are mapped back to
    indices; grey RGB masks give their grey level.

    Raises:
        OSError: The file cannot be decoded.
        ValueError: Colours outside the VOC palette, or values above 255.
    """
    with Image.open(path) as image:
        mode = image.mode
        array = np.asarray(image.convert("RGB") if mode in ("RGB", "RGBA") else image)
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
        raise ValueError(
            f"Mask {path} has colour {tuple(array[y, x])} at (x={x}, y={y}), which is not in the "
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
class _Scan:
    """What the audit learned from one pass over a split's masks."""

    pairs: list[tuple[Path, Path]] = field(default_factory=list)  # readable, same size
    values: list[np.ndarray] = field(default_factory=list)  # distinct raw values per mask
    histogram: np.ndarray = field(default_factory=lambda: np.zeros(256, np.int64))
    modes: Counter = field(default_factory=Counter)
    sizes: list[tuple[int, int]] = field(default_factory=list)


def scan_pairs(pairs: Sequence[tuple[Path, Path]], skipped: Skipped, where: str) -> _Scan:
    """Read every mask once (images only to their header, for the size); skip unreadable files.

    Raises:
        ValueError: A mask's size differs from its image's.
    """
    scan, mismatched = _Scan(), []
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


def check_values(scan: _Scan, mask_format: MaskFormat) -> None:
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


# --- sources: demo, VOC-style folders, Oxford-IIIT Pet -----------------------------------------


@dataclass
class _Split:
    """One split: image and mask files read lazily, or arrays in memory (the demo)."""

    names: list[str]
    images: list[Path] | np.ndarray  # paths, or (N, H, W, 3) uint8
    masks: list[Path] | np.ndarray  # paths, or (N, H, W) uint8 class ids
    histogram: np.ndarray  # raw mask values (256,) over the split, for the audit
    sizes: list[tuple[int, int]] = field(default_factory=list)

    @classmethod
    def from_scan(cls, scan: _Scan) -> _Split:
        """A file-backed split from what the audit kept."""
        images = [image for image, _ in scan.pairs]
        masks = [mask for _, mask in scan.pairs]
        return cls([str(p) for p in images], images, masks, scan.histogram, scan.sizes)


@dataclass
class _Source:
    class_names: list[str]
    splits: dict[str, _Split]
    mask_format: MaskFormat
    description: str
    skipped: Skipped = field(default_factory=Skipped)


def _hold_out(
    pairs: dict[str, list[tuple[Path, Path]]], val_split: float, seed: int
) -> dict[str, list[tuple[Path, Path]]]:
    """Without a val split, hold out `val_split` of train, seeded."""
    if "val" not in pairs:
        train, val = split_indices(len(pairs["train"]), val_split, seed)
        pairs["val"] = [pairs["train"][i] for i in val]
        pairs["train"] = [pairs["train"][i] for i in train]
    return pairs


def _voc_pairs(root: Path, skipped: Skipped) -> dict[str, list[tuple[Path, Path]]]:
    """(image, mask) pairs per split of `root/JPEGImages` + `root/SegmentationClassPNG`.

    Split by `root/ImageSets/Segmentation/{train,val,test}.txt` when present.
    """
    images_dir = root / "JPEGImages"
    masks_dir = next((root / name for name in MASK_FOLDERS if (root / name).is_dir()), None)
    if not images_dir.is_dir() or masks_dir is None:
        raise FileNotFoundError(
            f"{root} is not a VOC-style folder: expected {root}/JPEGImages/ and "
            f"{root}/SegmentationClassPNG/ (a mask PNG per image, same file stem)."
        )
    images = {}
    for path in sorted(p for p in images_dir.iterdir() if p.is_file()):
        if is_image_file(path):
            images[path.stem] = path
        else:
            skipped.not_image.append(path)
    masks = {p.stem: p for p in masks_dir.iterdir() if p.is_file() and is_image_file(p)}
    lists = root / "ImageSets" / "Segmentation"
    if (lists / "train.txt").is_file():
        stems = {
            split: [s for s in (lists / f"{split}.txt").read_text().split() if s]
            for split in ("train", "val", "test")
            if (lists / f"{split}.txt").is_file()
        }
        unknown = [(split, s) for split, names in stems.items() for s in names if s not in images]
        if unknown:
            split, stem = unknown[0]
            raise FileNotFoundError(
                f"{lists / (split + '.txt')} lists {stem!r} (and {len(unknown) - 1} more), which "
                f"has no image in {images_dir}. Fix the list or add the image."
            )
    else:
        stems = {"train": sorted(images)}
    missing = [images[s] for names in stems.values() for s in names if s not in masks]
    if missing:
        raise FileNotFoundError(
            f"No mask for {len(missing)} image(s), e.g. {missing[0]}: expected "
            f"{masks_dir / (missing[0].stem + '.png')}. Add the masks, remove those images, or "
            f"list the images to use in {lists}/train.txt (and val.txt)."
        )
    return {split: [(images[s], masks[s]) for s in names] for split, names in stems.items()}


PETS = {"cats": 0, "dogs": 1}  # the SPECIES column of Oxford-IIIT Pet's lists, minus one


def _oxford_pet_pairs(root: Path, pets: str) -> dict[str, list[tuple[Path, Path]]]:
    """(image, trimap) pairs of Oxford-IIIT Pet (trainval -> train, test), filtered by species."""
    from torchvision.datasets import OxfordIIITPet

    parent = root if (root / "oxford-iiit-pet").is_dir() else root.parent
    pairs = {}
    for split, name in (("train", "trainval"), ("test", "test")):
        try:
            data = OxfordIIITPet(parent, split=name, target_types="segmentation", download=False)
        except (RuntimeError, FileNotFoundError) as error:
            if split == "test" and isinstance(error, FileNotFoundError):
                continue  # no test list: train and val only
            raise FileNotFoundError(
                f"No Oxford-IIIT Pet under {root}: expected oxford-iiit-pet/images/*.jpg and "
                "oxford-iiit-pet/annotations/ (trimaps/, trainval.txt, test.txt). Download it "
                "once, e.g. torchvision.datasets.OxfordIIITPet(root, download=True)."
            ) from error
        # torchvision keeps the file lists and species (0 cat, 1 dog) in private fields.
        keep = [i for i, s in enumerate(data._bin_labels) if pets == "all" or s == PETS[pets]]
        pairs[split] = [(data._images[i], data._segs[i]) for i in keep]
    return pairs


def _detect_layout(root: Path) -> str:
    if (root / "JPEGImages").is_dir():
        return "voc"
    if (root / "oxford-iiit-pet").is_dir() or (root / "annotations" / "trimaps").is_dir():
        return "oxford_pet"
    if next(root.glob("*.json"), None) or next(root.glob("*/*.json"), None):
        raise ValueError(
            f"{root} holds labelme JSON files: convert them first with `zoo prepare labelme "
            f"{root} OUT --labels labels.txt`, then set root to OUT."
        )
    raise FileNotFoundError(
        f"Cannot tell the layout of {root}. Expected a VOC-style folder (JPEGImages/, "
        "SegmentationClassPNG/, optional ImageSets/Segmentation/{train,val}.txt) or Oxford-IIIT "
        "Pet (oxford-iiit-pet/images/, oxford-iiit-pet/annotations/trimaps/)."
    )


# --- datasets and transforms -------------------------------------------------------------------


class _SegmentationDataset(Dataset):
    """Samples {"image", "mask", "name"} (+ "original", the uint8 image, for prediction)."""

    def __init__(
        self, split: _Split, mask_format: MaskFormat, transform: Callable, with_original: bool
    ) -> None:
        self.split = split
        self.mask_format = mask_format
        self.transform = transform
        self.with_original = with_original

    def __len__(self) -> int:
        return len(self.split.names)

    def __getitem__(self, index: int) -> dict[str, Any]:
        from torchvision import tv_tensors

        image, mask = self._read(index)
        out_image, out_mask = self.transform(tv_tensors.Image(image), tv_tensors.Mask(mask))
        sample = {
            "image": out_image.as_subclass(torch.Tensor),
            "mask": out_mask.as_subclass(torch.Tensor).long(),
            "name": self.split.names[index],
        }
        if self.with_original:
            sample["original"] = image
        return sample

    def _read(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        images, masks = self.split.images, self.split.masks
        if isinstance(images, np.ndarray):
            return torch.from_numpy(images[index]).permute(2, 0, 1), torch.from_numpy(masks[index])
        image = load_image(images[index], 3)
        raw, _ = read_mask(masks[index])
        if raw.shape != image.shape[-2:]:  # the files changed since the audit
            raise ValueError(
                f"Mask {masks[index]} is {raw.shape[1]}x{raw.shape[0]} but image {images[index]} "
                f"is {image.shape[2]}x{image.shape[1]}: export the mask at the image's size."
            )
        return image, torch.from_numpy(self.mask_format.decode(raw, masks[index]))


class _ImageDataset(Dataset):
    """Unlabelled images to segment: {"image", "original", "name"}."""

    def __init__(self, paths: Sequence[Path], transform: Callable) -> None:
        self.paths = list(paths)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, Any]:
        original = load_image(self.paths[index], 3)
        return {
            "image": self.transform(original),
            "original": original,
            "name": str(self.paths[index]),
        }


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack images and masks; keep names and the original images (sizes differ) as lists."""
    batch = {key: [sample[key] for sample in samples] for key in samples[0]}
    for key in ("image", "mask"):
        if key in batch:
            batch[key] = torch.stack(batch[key])
    return batch


def train_transform(
    *, image_size: int, mean: Sequence[float], std: Sequence[float], crop_scale: Sequence[float]
) -> Callable:
    """Joint image + mask augmentation: random resized crop and flip, then colour jitter.

    Masks are resized with nearest neighbour; jitter, scaling and normalising touch the image only.
    """
    from torchvision.transforms import v2

    return v2.Compose(
        [
            v2.RandomResizedCrop(image_size, scale=tuple(crop_scale), antialias=True),
            v2.RandomHorizontalFlip(),
            v2.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.02),
            v2.ToDtype(torch.float32, scale=True),  # images only; masks keep their class ids
            v2.Normalize(list(mean), list(std)),
        ]
    )


# --- the datamodule ----------------------------------------------------------------------------


class CatSegmentationDataModule(LightningDataModule):
    """Images with class-index masks: a VOC-style folder, Oxford-IIIT Pet, or the demo.

    Batches are dicts: "image" (B, 3, S, S) normalised, "mask" (B, S, S) int64 class ids with
    255 ignored, "name" (file paths). Prediction batches add "original" (the uint8 images at
    their own size) and have "mask" only when predicting a labelled split.

    Args:
        root: Data folder; unset for the synthetic demo. A VOC-style folder (`JPEGImages/`,
            `SegmentationClassPNG/` or `SegmentationClass/`, optional
            `ImageSets/Segmentation/{train,val,test}.txt` and `class_names.txt`), e.g. the
            output of `zoo prepare labelme`; or a downloaded Oxford-IIIT Pet (the folder holding
            `oxford-iiit-pet/`).
        layout: "voc", "oxford_pet", or "auto" (tell from the folder).
        class_names: Class names by mask value, background first; default `class_names.txt` in
            `root`, else background and cat.
        pets: Oxford-IIIT Pet only: keep the cat breeds, the dog breeds, or all pets.
        image_size: Side of the square network input.
        batch_size: Samples per batch.
        num_workers: DataLoader worker processes.
        val_split: Share of train held out for validation when there is no val split.
        seed: Seed of that split and of the demo images.
        predict_path: Image file(s) or folder(s) to segment; unset to predict the val split.
        crop_scale: Area range of the random resized crop (training).
        demo_images: Training images in the demo (val and test get a quarter each).
    """

    mean, std = IMAGENET_MEAN, IMAGENET_STD
    num_channels = 3

    def __init__(
        self,
        root: str | None = None,
        layout: Literal["auto", "voc", "oxford_pet"] = "auto",
        class_names: list[str] | None = None,
        pets: Literal["cats", "dogs", "all"] = "cats",
        image_size: int = 256,
        batch_size: int = 16,
        num_workers: int = 0,
        val_split: float = 0.2,
        seed: int = 0,
        predict_path: str | list[str] | None = None,
        crop_scale: tuple[float, float] = (0.5, 1.0),
        demo_images: int = 320,
    ) -> None:
        super().__init__()
        if image_size < 16:
            raise ValueError(f"image_size must be >= 16 (the UNet pools 4 times), got {image_size}")
        if not 0.0 < crop_scale[0] <= crop_scale[1] <= 1.0:
            raise ValueError(f"crop_scale must satisfy 0 < low <= high <= 1, got {crop_scale}")
        self.root = Path(root).expanduser() if root else None
        self.layout = layout
        self._class_names = list(class_names) if class_names else None
        self.pets = pets
        self.image_size = image_size
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.val_split = val_split
        self.seed = seed
        self.predict_path = predict_path
        self.crop_scale = crop_scale
        self.demo_images = demo_images
        self.datasets: dict[str, Dataset] = {}
        self.model_facts: dict[str, Any] = {}

    def use_model_facts(self, facts: Mapping[str, Any]) -> None:
        """Read data the way a trained model expects (`zoo ... --ckpt_path` calls this).

        `facts` come from the checkpoint: class names, image size, normalisation. Masks must
        have the same classes; predicting `predict_path` reads nothing else.
        """
        self.model_facts = dict(facts)
        self.image_size = facts.get("image_size", self.image_size)
        self.mean = tuple(facts.get("mean", self.mean))
        self.std = tuple(facts.get("std", self.std))

    @property
    def class_names(self) -> list[str]:
        """Class names by mask value (background first); `zoo` links them into the task."""
        return list(self.model_facts.get("class_names") or self.source.class_names)

    @functools.cached_property
    def source(self) -> _Source:
        """The data, indexed and audited once (masks are scanned, nothing is kept in memory)."""
        if self.root is None:
            return self._read_demo()
        if not self.root.exists():
            raise FileNotFoundError(
                f"Data root {self.root} does not exist. Point --data.init_args.root at a "
                "VOC-style folder or Oxford-IIIT Pet, or leave it unset for demo data."
            )
        layout = _detect_layout(self.root) if self.layout == "auto" else self.layout
        skipped = Skipped()
        if layout == "voc":
            pairs = _voc_pairs(self.root, skipped)
            names = self._class_names or self._names_file() or list(CLASS_NAMES)
            description = f"VOC-style folder {self.root}"
        else:
            pairs = _oxford_pet_pairs(self.root, self.pets)
            names = ["background", {"cats": "cat", "dogs": "dog", "all": "pet"}[self.pets]]
            description = f"Oxford-IIIT Pet ({self.pets}) under {self.root}"
        scans = {
            split: scan_pairs(items, skipped, f"{split} masks")
            for split, items in _hold_out(pairs, self.val_split, self.seed).items()
        }
        skipped.report(str(self.root))
        modes = sum((scan.modes for scan in scans.values()), Counter())
        values = {int(v) for scan in scans.values() for vs in scan.values for v in vs}
        if layout == "oxford_pet":
            mask_format = MaskFormat("trimap", 2)
        else:
            mask_format = decide_format(modes, values, len(names))
        for scan in scans.values():
            check_values(scan, mask_format)
        splits = {split: _Split.from_scan(scan) for split, scan in scans.items()}
        return _Source(names, splits, mask_format, description, skipped)

    def _names_file(self) -> list[str] | None:
        path = self.root / "class_names.txt"
        return (
            [line.strip() for line in path.read_text().splitlines() if line.strip()]
            if path.is_file()
            else None
        )

    def _read_demo(self) -> _Source:
        splits = {}
        counts = (self.demo_images, self.demo_images // 4, self.demo_images // 4)
        for offset, (split, count) in enumerate(zip(("train", "val", "test"), counts, strict=True)):
            images, masks = make_cats(max(count, 1), self.image_size, self.seed + offset)
            names = [f"demo/{split}/{i:05d}" for i in range(len(images))]
            histogram = np.bincount(masks.ravel(), minlength=256)
            splits[split] = _Split(
                names, images, masks, histogram, [(self.image_size,) * 2] * len(names)
            )
        description = "demo: synthetic cats drawn from shapes (not photos), seeded, exact masks"
        return _Source(list(CLASS_NAMES), splits, MaskFormat("index", 2), description)

    def setup(self, stage: str) -> None:
        """Build the datasets for `stage`; print the data audit once."""
        evaluate = eval_transform(self.image_size, self.mean, self.std)
        if stage == "predict" and self.predict_path:  # only these files: no training data
            self.datasets["predict"] = _ImageDataset(readable_images(self.predict_path), evaluate)
            return
        source = self.source
        if "class_names" in self.model_facts:
            check_model_classes(source.class_names, self.class_names, source.description)
        if not self.datasets:
            _print_audit(source)
        train = train_transform(
            image_size=self.image_size, mean=self.mean, std=self.std, crop_scale=self.crop_scale
        )
        for split, data in source.splits.items():
            transform = train if split == "train" else evaluate
            self.datasets[split] = _SegmentationDataset(data, source.mask_format, transform, False)
        if stage == "test" and "test" not in source.splits:
            rank_zero_warn("No test split: testing on the validation split.")
        if stage == "predict":
            self.datasets["predict"] = _SegmentationDataset(
                source.splits["val"], source.mask_format, evaluate, with_original=True
            )

    def _loader(self, split: str, shuffle: bool = False) -> DataLoader:
        return make_loader(
            self.datasets[split], self.batch_size, self.num_workers, shuffle, collate
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled, augmented training batches."""
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        """Validation batches."""
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        """Test batches (the test split, or validation when there is none)."""
        return self._loader("test" if "test" in self.datasets else "val")

    def predict_dataloader(self) -> DataLoader:
        """Batches of `predict_path` images, or of the validation split (with its masks)."""
        return self._loader("predict")


@rank_zero_only
def _print_audit(source: _Source) -> None:
    """Images and pixel shares per class and split, and how the masks were read."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Data audit: {source.description}", title_justify="left")
    table.add_column("split")
    table.add_column("images", justify="right")
    for name in source.class_names:
        table.add_column(f"{name} px", justify="right")
    table.add_column("ignored px", justify="right")
    lut = source.mask_format.lut
    for split, data in source.splits.items():
        ids = np.bincount(lut.clip(min=0), weights=data.histogram, minlength=256)
        total = max(ids.sum(), 1)
        shares = [f"{ids[c] / total:.1%}" for c in range(len(source.class_names))]
        table.add_row(split, str(len(data.names)), *shares, f"{ids[IGNORE_INDEX] / total:.1%}")
    console = Console()
    console.print(table)
    console.print(f"masks: {source.mask_format.describe()}")
    sizes = [size for data in source.splits.values() for size in data.sizes]
    if sizes:
        console.print(size_summary(sizes))
    if len(source.skipped):
        console.print(f"skipped {len(source.skipped)} file(s) (see the warnings above)")
