"""Synthetic mouth crops for the face-expression demo: frown, neutral, smile, surprise."""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

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
