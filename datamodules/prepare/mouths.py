"""`zoo prepare mouths SRC DST`: face photos -> the mouth crops the face-expression model sees.

OpenCV Haar cascades find the face; the lower part of its box, refined by the smile cascade, is
the mouth. The class-per-folder tree is kept; images with no face are listed in `no_face.txt`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from datamodules.images import IMAGE_EXTENSIONS, is_image_file

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
