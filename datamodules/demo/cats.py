"""Procedural cats on textured backgrounds with exact masks (the cat segmentation demo)."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

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
