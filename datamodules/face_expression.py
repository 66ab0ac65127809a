"""Face-expression data: mouth-region crops from class folders, the FER2013 CSV, or a demo source.

Also holds `prepare_mouths`, the `zoo prepare mouths SRC DST` step that turns face photos into the
mouth crops the model is trained on (OpenCV Haar cascades).
"""

from __future__ import annotations

import csv
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
from lightning.pytorch.utilities import rank_zero_warn

from datamodules.common import (
    IMAGE_EXTENSIONS,
    ImageClassificationDataModule,
    ImageSource,
    Split,
    is_image_file,
)

FER2013_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
FER2013_SPLITS = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
FER2013_SIDE = 48

# --- demo source: procedural mouth crops (synthetic, not realistic) ---------------------------

CLASS_NAMES: tuple[str, ...] = ("frown", "neutral", "smile", "surprise")

_SHIFT = 4  # cv2 fixed-point bits: sub-pixel drawing keeps small 48 px mouths smooth
_SCALE = 1 << _SHIFT
_AA = cv2.LINE_AA
# Skin anchors from very light to very dark (RGB); tones are interpolated between them.
_SKIN_ANCHORS = np.array(
    [[255, 224, 196], [234, 192, 160], [198, 134, 96], [141, 85, 54], [88, 54, 38]],
    dtype=np.float32,
)
_LIP_TINT = np.array([170, 60, 70], dtype=np.float32)  # reddish pull applied to skin for lips
# Mouth-line bend as a fraction of half-width (image y points down, so > 0 = smile).
# The gap between the neutral band and the smile/frown bands is the main difficulty knob.
_BEND = {"frown": (-0.5, -0.2), "neutral": (-0.06, 0.06), "smile": (0.2, 0.55)}
_P_TEETH, _P_OCCLUDER, _P_MOUSTACHE, _P_BLUR, _P_SHADING = 0.5, 0.4, 0.2, 0.35, 0.6
_N_CURVE = 13  # polyline samples per lip edge
# Pose of the mouth inside the crop: detector boxes are never pixel-exact.
_JITTER, _HALF_WIDTH, _MAX_TILT_DEG = 0.14, (0.2, 0.38), 15.0  # fractions of size / degrees


class _Mouth(NamedTuple):
    """Per-image mouth pose (pixels / radians) and colours (RGB floats for cv2)."""

    centre: np.ndarray
    half_w: float
    angle: float
    lip: tuple[float, ...]
    dark: tuple[float, ...]


def _skin_tone(rng: np.random.Generator) -> np.ndarray:
    """Random skin colour anywhere on the light-to-dark range, with a per-channel cast."""
    t = rng.uniform(0, len(_SKIN_ANCHORS) - 1)
    i = min(int(t), len(_SKIN_ANCHORS) - 2)
    base = _SKIN_ANCHORS[i] + (t - i) * (_SKIN_ANCHORS[i + 1] - _SKIN_ANCHORS[i])
    return np.clip(base + rng.normal(0, 8, 3), 0, 255)


def _pts(xy: np.ndarray, centre: np.ndarray, angle: float) -> np.ndarray:
    """Rotate local (x, y) points, move them to `centre`, encode as cv2 fixed-point int32."""
    c, s = np.cos(angle), np.sin(angle)
    rot = xy @ np.array([[c, s], [-s, c]], dtype=np.float64)
    return np.round((rot + centre) * _SCALE).astype(np.int32)


def _draw_shading(img: np.ndarray, rng: np.random.Generator, skin: np.ndarray) -> None:
    """Soft nose-base shadow at the top and chin-line shadow at the bottom, some of the time."""
    h = img.shape[0]
    dark = tuple(float(v) for v in skin * rng.uniform(0.75, 0.92))
    if rng.random() < _P_SHADING:  # nostrils / nose base peeking in at the top edge
        for side in (-1, 1):
            dx, dy = rng.uniform(0.08, 0.16), rng.uniform(0, 0.08)
            centre = (int(h * (0.5 + side * dx)), int(h * dy))
            cv2.ellipse(img, centre, (max(1, h // 14), max(1, h // 24)), 0, 0, 360, dark, -1, _AA)
    if rng.random() < _P_SHADING:  # chin contour near the bottom edge
        centre = (int(h / 2 + rng.normal(0, h * 0.05)), int(h * rng.uniform(0.72, 0.85)))
        axes = (int(h * rng.uniform(0.3, 0.5)), int(h * rng.uniform(0.15, 0.3)))
        cv2.ellipse(img, centre, axes, 0, 20, 160, dark, max(1, h // 16), _AA)
    cv2.GaussianBlur(img, (5, 5), 0, dst=img)  # shading is diffuse, never a crisp line


def _draw_curved_mouth(img: np.ndarray, rng: np.random.Generator, kind: str, m: _Mouth) -> None:
    """Closed or teeth-showing mouth whose centre line bends up (smile) or down (frown)."""
    half_w = m.half_w
    x = np.linspace(-half_w, half_w, _N_CURVE)
    u = x / half_w
    taper = np.sqrt(np.clip(1 - u**2, 0, 1))  # lips thin out towards the corners
    mid = rng.uniform(*_BEND[kind]) * half_w * (1 - u**2)
    opening = 0.0
    if kind == "smile" and rng.random() < _P_TEETH:
        opening = rng.uniform(0.12, 0.3) * half_w
    gap_bot = mid + opening * (1 - u**2)
    upper = mid - rng.uniform(0.12, 0.3) * half_w * taper
    lower = gap_bot + rng.uniform(0.15, 0.35) * half_w * taper

    def poly(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
        return _pts(
            np.column_stack([np.r_[x, x[::-1]], np.r_[top, bottom[::-1]]]), m.centre, m.angle
        )

    cv2.fillPoly(img, [poly(upper, lower)], m.lip, _AA, _SHIFT)
    if opening > 0:
        cv2.fillPoly(img, [poly(mid, gap_bot)], m.dark, _AA, _SHIFT)
        teeth = tuple(float(v) for v in rng.uniform(200, 250) * np.array([1.0, 0.97, 0.9]))
        cv2.fillPoly(img, [poly(mid, mid + 0.5 * (gap_bot - mid))], teeth, _AA, _SHIFT)
    else:  # closed lips: thin dark seam along the centre line
        line = _pts(np.column_stack([x, mid]), m.centre, m.angle)
        cv2.polylines(img, [line], False, m.dark, 1, _AA, _SHIFT)


def _draw_surprise(img: np.ndarray, rng: np.random.Generator, m: _Mouth) -> None:
    """Open round/oval mouth: thick lip ring around a dark cavity."""
    ax = m.half_w * rng.uniform(0.4, 0.7)
    ay = ax * rng.uniform(0.8, 1.4)
    ring = m.half_w * rng.uniform(0.12, 0.25)
    c = tuple(int(v) for v in np.round(m.centre * _SCALE))
    deg = float(np.degrees(m.angle))
    outer = (int((ax + ring) * _SCALE), int((ay + ring) * _SCALE))
    inner = (int(ax * _SCALE), int(ay * _SCALE))
    cv2.ellipse(img, c, outer, deg, 0, 360, m.lip, -1, _AA, _SHIFT)
    cv2.ellipse(img, c, inner, deg, 0, 360, m.dark, -1, _AA, _SHIFT)


def _draw_occluders(img: np.ndarray, rng: np.random.Generator, m: _Mouth) -> None:
    """Sometimes a hand/microphone blob or a moustache stroke hides part of the mouth."""
    h, half_w = img.shape[0], m.half_w
    if rng.random() < _P_OCCLUDER:
        colour = tuple(float(v) for v in rng.uniform(0, 255, 3))
        # Off to one side of the mouth so it hides a corner at most, never the whole mouth.
        offset = np.array([rng.choice([-1, 1]) * rng.uniform(0.9, 1.5), rng.uniform(-1, 1)])
        pos = tuple(int(v) for v in m.centre + offset * half_w)
        axes = tuple(int(v) for v in rng.uniform(0.08, 0.16, 2) * h)
        if rng.random() < 0.5:
            cv2.ellipse(img, pos, axes, float(rng.uniform(0, 180)), 0, 360, colour, -1, _AA)
        else:
            p1 = (pos[0] - axes[0], pos[1] - axes[1])
            cv2.rectangle(img, p1, (pos[0] + axes[0], pos[1] + axes[1]), colour, -1, _AA)
    if rng.random() < _P_MOUSTACHE:
        x = np.linspace(-half_w * 0.9, half_w * 0.9, 7)
        y = -half_w * (0.6 + 0.2 * (1 - (x / half_w) ** 2) * rng.uniform(-0.5, 1))
        hair = tuple(float(v) for v in rng.uniform(10, 90) * np.ones(3))
        stroke = _pts(np.column_stack([x, y]), m.centre, 0.0)  # unrotated: not tied to the mouth
        cv2.polylines(img, [stroke], False, hair, int(rng.integers(2, 4)), _AA, _SHIFT)


def _photometric(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Camera effects: optional blur, directional lighting gradient, contrast, noise."""
    h = img.shape[0]
    if rng.random() < _P_BLUR:
        img = cv2.GaussianBlur(img, (5, 5), rng.uniform(0.6, 1.4))
    theta = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:h, 0:h] / (h - 1) - 0.5
    grad = 1 + rng.uniform(0, 0.8) * (np.cos(theta) * xx + np.sin(theta) * yy)
    out = img.astype(np.float32) * (rng.uniform(0.6, 1.25) * grad)[..., None]
    out += rng.uniform(-40, 40) + rng.normal(0, rng.uniform(3, 16), img.shape)
    return np.clip(out, 0, 255).astype(np.uint8)


def make_mouths(num_per_class: int, size: int = 48, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Draw `num_per_class` synthetic mouth crops per class.

    Args:
        num_per_class: Crops generated for each entry of `CLASS_NAMES`.
        size: Side length of the square crops in pixels.
        seed: Seed for `np.random.default_rng`; equal arguments give identical arrays.

    Returns:
        Images as uint8 RGB of shape (N, size, size, 3) and int64 labels of shape (N,),
        grouped by class (callers shuffle).
    """
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(CLASS_NAMES), dtype=np.int64), num_per_class)
    images = np.empty((len(labels), size, size, 3), dtype=np.uint8)
    for n, label in enumerate(labels):
        skin = _skin_tone(rng)
        img = np.empty((size, size, 3), dtype=np.uint8)
        img[:] = np.round(skin).astype(np.uint8)
        _draw_shading(img, rng, skin)
        mix = rng.uniform(0.25, 0.6)  # how far lips are pulled from skin towards red
        lip = tuple(float(v) for v in ((1 - mix) * skin + mix * _LIP_TINT) * rng.uniform(0.6, 0.95))
        dark = tuple(float(v) for v in skin * rng.uniform(0.1, 0.3))
        m = _Mouth(
            centre=size * (0.5 + rng.uniform(-_JITTER, _JITTER, 2)),
            half_w=size * rng.uniform(*_HALF_WIDTH),
            angle=float(np.radians(rng.uniform(-_MAX_TILT_DEG, _MAX_TILT_DEG))),
            lip=lip,
            dark=dark,
        )
        kind = CLASS_NAMES[label]
        if kind == "surprise":
            _draw_surprise(img, rng, m)
        else:
            _draw_curved_mouth(img, rng, kind, m)
        _draw_occluders(img, rng, m)
        images[n] = _photometric(img, rng)
    return images, labels


class FaceExpressionDataModule(ImageClassificationDataModule):
    """Mouth-region crops labelled by expression.

    `root` may be a class-per-folder tree (`root/train/<class>/*`, `root/val/<class>/*`, optional
    `root/test/`; without `val/` a seeded `val_split` of train is held out), or the FER2013 CSV
    (`emotion,pixels,Usage`; a folder holding `fer2013.csv` works too). Without `root` a procedural,
    seeded demo set of synthetic mouth crops is used (it is not real data).

    Args:
        root: Data location; None uses the synthetic demo source.
        batch_size: Images per batch.
        num_workers: DataLoader worker processes.
        val_split: Fraction of train held out when the data has no validation split.
        seed: Seed for the split and the demo generator.
        predict_path: Image file(s) or folder to predict on; default the validation split. A
            folder of class sub-folders (e.g. `val/`) gives the true labels too.
        image_size: Side of the square model input.
        grayscale: Force 1-channel (True) or RGB (False) input; None decides from the data.
        demo_per_class: Demo training images per class (val and test get a quarter each).
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
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            missing = {"emotion", "pixels"} - set(reader.fieldnames or ())
            if missing:
                raise ValueError(
                    f"{path} lacks column(s) {sorted(missing)}; FER2013 CSVs have the header "
                    f"'emotion,pixels,Usage' (Usage optional)."
                )
            for line, row in enumerate(reader, start=2):
                split = FER2013_SPLITS.get(row.get("Usage") or "Training")
                try:
                    label = int(row["emotion"])
                    pixels = np.array(row["pixels"].split(), dtype=np.uint8)
                except (ValueError, AttributeError):
                    pixels, label = None, -1
                if (
                    split is None
                    or pixels is None
                    or pixels.size != FER2013_SIDE**2
                    or not (0 <= label < len(FER2013_CLASSES))
                ):
                    bad.append(f"line {line}")
                    continue
                images, labels, names = rows.setdefault(split, ([], [], []))
                images.append(pixels.reshape(FER2013_SIDE, FER2013_SIDE, 1))
                labels.append(label)
                names.append(f"{path.name}:{line}")
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


# --- `zoo prepare mouths`: face photos -> mouth crops -------------------------------------

Box = tuple[int, int, int, int]  # x, y, w, h in image pixels
# Haar face boxes span roughly brow to chin, so the mouth sits in the lower ~third of the box.
MOUTH_TOP = 0.64
MOUTH_BOTTOM = 0.98
# The mouth is centred and ~half the face wide; 65% keeps the corners with some slack.
MOUTH_LEFT = 0.175
MOUTH_RIGHT = 0.825
# A smile-cascade hit must look like a mouth: narrower than the face, wider than a nostril.
SMILE_MIN_W, SMILE_MAX_W = 0.25, 0.80
SMILE_MARGIN = 0.15  # grow the tight smile box so lips are not cut off
# The smile cascade fires on many textures; a high vote count suppresses most false hits.
SMILE_NEIGHBORS = 20
# Default --min-face: a fraction of the shorter image side, so one value fits FER2013's 48 px
# crops, CK+/JAFFE photos and ordinary portraits (the astronaut's face is 18% of the side).
MIN_FACE = 0.1
MIN_FACE_FLOOR = 20  # pixels; a fractional --min-face never goes below (tiny false hits)
HAAR_WINDOW = 24  # the face cascade's training window: no face smaller than this is found
# Images whose shorter side is below this are upscaled first: a 48 px face crop then spans
# several window sizes (FER2013 sample, 1,400 faces: 338 found at 48 px, 748 at 96 px).
DETECT_SIDE = 96
# Face crops (FER2013, LFW) cut through brow and chin, but the cascade's box has margin around
# them; a black border lets it fit (FER2013 sample: 748 -> 1,107 found).
DETECT_PAD = 0.25


@functools.cache
def _cascade(name: str) -> cv2.CascadeClassifier:
    """Load a bundled Haar cascade once per process."""
    path = Path(cv2.data.haarcascades) / name
    clf = cv2.CascadeClassifier(str(path)) if path.is_file() else None
    if clf is None or clf.empty():
        raise RuntimeError(
            f"Haar cascade {path} is missing or unreadable; install opencv-python-headless<5 "
            "(OpenCV 5.x no longer ships the Haar cascade files)."
        )
    return clf


def _check_min_face(min_face: float) -> None:
    if min_face <= 0:
        raise ValueError(
            f"min_face={min_face} must be positive: a fraction of the shorter image side such "
            f"as {MIN_FACE}, or a side in pixels such as 48."
        )


def mouth_box(
    image_bgr: np.ndarray, *, use_smile: bool = True, min_face: float = MIN_FACE
) -> tuple[Box, Box] | None:
    """Return ``(face_box, mouth_box)`` for the largest face, or None when no face is found.

    ``min_face`` is the smallest face side: below 1 a fraction of the image's shorter side (but
    at least MIN_FACE_FLOOR pixels), otherwise pixels. Small images are upscaled for detection.
    """
    gray = cv2.equalizeHist(cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY))
    height, width = gray.shape
    _check_min_face(min_face)
    min_side = max(MIN_FACE_FLOOR, min_face * min(height, width)) if min_face < 1 else min_face
    scale = max(1.0, DETECT_SIDE / min(height, width))
    if scale > 1:
        gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    pad = round(DETECT_PAD * min(gray.shape))
    gray = cv2.copyMakeBorder(gray, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    min_size = max(HAAR_WINDOW, round(min_side * scale))
    faces = _cascade("haarcascade_frontalface_default.xml").detectMultiScale(
        gray, scaleFactor=1.1, minNeighbors=5, minSize=(min_size, min_size)
    )
    if len(faces) == 0:
        return None
    # Boxes below are in the padded, upscaled detection image until mapped back at the end.
    fx, fy, fw, fh = (int(v) for v in max(faces, key=lambda f: f[2] * f[3]))
    mouth = (
        fx + MOUTH_LEFT * fw,
        fy + MOUTH_TOP * fh,
        fx + MOUTH_RIGHT * fw,
        fy + MOUTH_BOTTOM * fh,
    )
    if use_smile:
        # Search only the lower half of the face: eyes otherwise trigger the smile cascade.
        top = fy + fh // 2
        roi = gray[top : fy + fh, fx : fx + fw]
        hits = _cascade("haarcascade_smile.xml").detectMultiScale(
            roi,
            scaleFactor=1.1,
            minNeighbors=SMILE_NEIGHBORS,
            minSize=(max(1, int(SMILE_MIN_W * fw)), max(1, fh // 10)),
        )
        ok = [
            h
            for h in hits
            if SMILE_MIN_W * fw <= h[2] <= SMILE_MAX_W * fw
            and abs(h[0] + h[2] / 2 - fw / 2) < fw / 4
        ]  # roughly centred horizontally
        if ok:
            sx, sy, sw, sh = (int(v) for v in max(ok, key=lambda h: h[2] * h[3]))
            mx, my = SMILE_MARGIN * sw, SMILE_MARGIN * sh
            mouth = (fx + sx - mx, top + sy - my, fx + sx + sw + mx, top + sy + sh + my)

    def to_image(x0: float, y0: float, x1: float, y1: float) -> Box:
        # The box may reach into the border: clamp it to the image.
        x0, y0 = max(0, int((x0 - pad) / scale)), max(0, int((y0 - pad) / scale))
        x1 = min(width, int(np.ceil((x1 - pad) / scale)))
        y1 = min(height, int(np.ceil((y1 - pad) / scale)))
        return x0, y0, x1 - x0, y1 - y0

    face, mouth = to_image(fx, fy, fx + fw, fy + fh), to_image(*mouth)
    if mouth[2] < 1 or mouth[3] < 1:  # a "face" whose mouth would lie in the border
        return None
    return face, mouth


def crop_mouth(
    image_bgr: np.ndarray, *, size: int = 64, use_smile: bool = True, min_face: float = MIN_FACE
) -> np.ndarray | None:
    """Return the mouth crop (size x size, BGR uint8) of the largest face, or None if no face."""
    boxes = mouth_box(image_bgr, use_smile=use_smile, min_face=min_face)
    if boxes is None:
        return None
    x, y, w, h = boxes[1]
    return cv2.resize(image_bgr[y : y + h, x : x + w], (size, size), interpolation=cv2.INTER_AREA)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


@dataclass
class MouthReport:
    """Outcome of :func:`prepare_mouths`."""

    written: int = 0
    no_face: list[Path] = field(default_factory=list)
    unreadable: list[Path] = field(default_factory=list)
    ignored: list[Path] = field(default_factory=list)
    min_face: float = MIN_FACE
    dst: Path | None = None

    def summary(self) -> str:
        """One line with all counts, and a hint when most images had no face."""
        line = (
            f"wrote {_plural(self.written, 'mouth crop')}; "
            f"{_plural(len(self.no_face), 'image')} had no face; "
            f"{_plural(len(self.unreadable), 'unreadable file')}; "
            f"{_plural(len(self.ignored), 'ignored non-image file')}"
        )
        if len(self.no_face) <= self.written:
            return line
        listed = self.dst / "no_face.txt" if self.dst is not None else "no_face.txt"
        return (
            f"{line}\nMost images had no face at --min-face {self.min_face:g} (below 1: a "
            f"fraction of the shorter image side, else pixels). If the faces are smaller, try "
            f"--min-face {self.min_face / 2:g}; faces must be upright and frontal, and folders "
            f"that already hold mouth crops need no preparing. {listed} lists the images."
        )


def _read(path: Path) -> np.ndarray | None:
    # np.fromfile + imdecode instead of imread so non-ASCII paths work on every OS.
    try:
        return cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_COLOR)
    except (OSError, cv2.error):
        return None


def prepare_mouths(
    src: Path, dst: Path, *, size: int = 64, use_smile: bool = True, min_face: float = MIN_FACE
) -> MouthReport:
    """Crop mouths from a class-per-folder tree SRC into DST/<same relative path>.png.

    Images without a face are listed (relative to SRC) in DST/no_face.txt. ``min_face`` is as
    in :func:`mouth_box`.
    """
    import cv2
    from rich.progress import track

    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise FileNotFoundError(
            f"Source folder {src} not found; expected class-per-folder images such as "
            f"{src}/train/smile/*.jpg or {src}/smile/*.jpg"
        )
    _check_min_face(min_face)
    files = sorted(p for p in src.rglob("*") if p.is_file())
    ignored = [p for p in files if not is_image_file(p)]
    report = MouthReport(ignored=ignored, min_face=min_face, dst=dst)
    images = [p for p in files if is_image_file(p)]
    if not images:
        raise ValueError(f"No image files ({', '.join(IMAGE_EXTENSIONS)}) found under {src}")
    outputs: set[Path] = set()
    dst.mkdir(parents=True, exist_ok=True)
    for path in track(images, description="Cropping mouths"):
        image = _read(path)
        if image is None:
            report.unreadable.append(path)
            continue
        crop = crop_mouth(image, size=size, use_smile=use_smile, min_face=min_face)
        if crop is None:
            report.no_face.append(path)
            continue
        out = (dst / path.relative_to(src)).with_suffix(".png")
        if out in outputs:  # a.jpg next to a.png: keep both
            out = out.with_name(f"{path.name}.png")
        outputs.add(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        cv2.imencode(".png", crop)[1].tofile(out)  # tofile: unicode-safe counterpart of imwrite
        report.written += 1
    if report.no_face:
        lines = "".join(f"{p.relative_to(src).as_posix()}\n" for p in report.no_face)
        (dst / "no_face.txt").write_text(lines, encoding="utf-8")
    return report
