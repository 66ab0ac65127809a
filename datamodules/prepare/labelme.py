"""`zoo prepare labelme`: labelme JSON annotations -> a VOC-style folder of class-index masks."""

from __future__ import annotations

import base64
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageOps
from rich.progress import track

from datamodules.masks import IGNORE_INDEX, voc_colormap
from datamodules.segmentation_folders import by_stem

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
    try:  # utf-8-sig: labels files saved by Windows editors often start with a BOM
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc}). Save it as UTF-8.") from exc
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
        if not isinstance(shape, dict):
            raise ValueError(f"{source}: shape {shape!r} is not an object with label and points.")
        label = shape.get("label")
        if label == IGNORE_LABEL:
            value = IGNORE_INDEX
        elif isinstance(label, str) and label in class_ids:
            value = class_ids[label]
        else:
            raise ValueError(
                f"{source}: label {label!r} is not in the labels file "
                f"({', '.join(sorted(class_ids))}). Add it to labels.txt or fix the annotation."
            )
        kind = shape.get("shape_type") or "polygon"
        if not isinstance(kind, str) or kind not in _MIN_POINTS:
            raise ValueError(f"{source}: shape_type {kind!r} (label {label!r}) is not supported.")
        try:
            xy = [(float(x), float(y)) for x, y in shape["points"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{source}: {kind} {label!r} has malformed points.") from exc
        if not all(map(math.isfinite, (v for point in xy for v in point))):
            raise ValueError(f"{source}: {kind} {label!r} has a point that is NaN or infinite.")
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
                bitmap = _mask_bitmap(shape, source)
                # paste takes C ints: clip the corner; a bitmap wholly outside stays outside
                left = int(min(max(box[0], -bitmap.width), width))
                top = int(min(max(box[1], -bitmap.height), height))
                canvas.paste(value, (left, top), bitmap)
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
        data = json.loads(path.read_text(encoding="utf-8-sig"))  # BOM: saved on Windows
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
    try:  # b64decode's binascii.Error is a ValueError
        raw = image_path.read_bytes() if image_path else base64.b64decode(data["imageData"])
        return ImageOps.exif_transpose(Image.open(io.BytesIO(raw))).convert("RGB")
    except (OSError, ValueError, TypeError, SyntaxError, Image.DecompressionBombError) as exc:
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
    by_stem(json_files, "VOC needs unique file stems")

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
        try:
            declared_size = None if None in declared else tuple(map(int, declared))
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"{path}: imageHeight and imageWidth must be whole numbers, got {declared[0]!r} "
                f"and {declared[1]!r}. Re-open and save it in labelme, or fix the sizes."
            ) from exc
        if declared_size is not None and declared_size != (height, width):
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
