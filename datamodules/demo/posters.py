"""Synthetic posters with and without one fixed emblem (the logo demo), drawn with OpenCV."""

from __future__ import annotations

import cv2
import numpy as np

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
