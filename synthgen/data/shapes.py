"""A procedural toy dataset: coloured shapes on varied backgrounds, deterministic from a seed.

Each class is a (colour, shape) pair. Position, size, rotation, a soft shading across the shape,
the shape's exact tint and the background vary per image. Backgrounds are flat or a two-colour
gradient of low-saturation colours (greys, beiges, slates), each at least MIN_BACKGROUND_DISTANCE
from the shape's colour. Shapes are drawn as a mask at 4x the output resolution and box-filtered
down, so edges are antialiased like a photographed object.
"""
from __future__ import annotations

import math
from typing import Iterator

import numpy as np
from PIL import Image, ImageDraw
from pydantic import Field, field_validator

from synthgen.config.base import Section, Seed
from synthgen.data.sources import Source, SourceItem, SourceSpec

SHAPES = ("circle", "square", "triangle")
COLOURS = {  # base RGB of each class colour; each image jitters it a little
    "red": (215, 45, 40),
    "green": (40, 165, 70),
    "blue": (40, 85, 215),
    "yellow": (235, 195, 35),
}
CLASS_NAMES = [f"{colour}_{shape}" for colour in COLOURS for shape in SHAPES]
SUPERSAMPLE = 4  # shapes are drawn at this multiple of the output size, then box-filtered down
MIN_BACKGROUND_DISTANCE = 90.0  # RGB distance every background colour keeps from the shape colour
# Circumradius of each shape per unit radius. Polygons therefore cover about half a circle's area:
# at 32 px, size is a clue to the class alongside the corners.
CIRCUMRADIUS = {"circle": 1.0, "square": 0.9, "triangle": 1.1}


def _shape_mask(shape: str, resolution: int, centre: np.ndarray, radius: float, angle: float) -> np.ndarray:
    """An antialiased float mask in [0, 1] of one shape, drawn at 4x and downsampled."""
    big = resolution * SUPERSAMPLE
    cx, cy, r = centre[0] * SUPERSAMPLE, centre[1] * SUPERSAMPLE, radius * SUPERSAMPLE
    mask = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(mask)
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
    else:
        corners = 4 if shape == "square" else 3
        r = r * CIRCUMRADIUS[shape]
        points = [(cx + r * math.cos(angle + 2 * math.pi * k / corners),
                   cy + r * math.sin(angle + 2 * math.pi * k / corners)) for k in range(corners)]
        draw.polygon(points, fill=255)
    small = mask.resize((resolution, resolution), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float32) / 255.0


def _background_colour(rng: np.random.Generator, shape_colour: np.ndarray) -> np.ndarray:
    """A low-saturation colour (grey, beige, slate...) far enough from the shape colour."""
    while True:
        grey = rng.uniform(25, 235)
        colour = np.clip(grey + rng.normal(0, 18, size=3), 0, 255)
        if np.linalg.norm(colour - shape_colour) >= MIN_BACKGROUND_DISTANCE:
            return colour


def _background(rng: np.random.Generator, resolution: int, shape_colour: np.ndarray) -> np.ndarray:
    """A flat colour or a linear gradient between two background colours, (H, W, 3) float."""
    first = _background_colour(rng, shape_colour)
    second = _background_colour(rng, shape_colour) if rng.random() < 0.6 else first
    theta = rng.uniform(0, 2 * math.pi)
    ys, xs = np.mgrid[0:resolution, 0:resolution] / max(resolution - 1, 1)
    ramp = xs * math.cos(theta) + ys * math.sin(theta)
    ramp = (ramp - ramp.min()) / max(ramp.max() - ramp.min(), 1e-6)
    return first + ramp[..., None] * (second - first)


def _render_one(rng: np.random.Generator, resolution: int, shape: str, colour: str,
                size: tuple[float, float]) -> np.ndarray:
    """One (H, W, 3) uint8 image of `colour` `shape` at a random pose on a random background."""
    base = np.asarray(COLOURS[colour], dtype=np.float32)
    tint = np.clip(base + rng.normal(0, 12, size=3), 0, 255)
    radius = rng.uniform(*size) * resolution
    centre = rng.uniform(radius, resolution - radius, size=2)
    mask = _shape_mask(shape, resolution, centre, radius, rng.uniform(0, 2 * math.pi))
    # Soft directional light across the shape: up to +-15 % brightness.
    light = rng.uniform(0, 2 * math.pi)
    ys, xs = (np.mgrid[0:resolution, 0:resolution] - centre[::-1, None, None]) / radius
    shade = 1.0 + 0.15 * np.clip(xs * math.cos(light) + ys * math.sin(light), -1, 1)
    foreground = np.clip(tint * shade[..., None], 0, 255)
    image = _background(rng, resolution, tint) * (1 - mask[..., None]) + foreground * mask[..., None]
    image += rng.normal(0, 2.0, size=image.shape)  # faint sensor noise
    return np.clip(image.round(), 0, 255).astype(np.uint8)


class ShapesOptions(Section):
    """Options of the shapes source."""

    num_images: int = Field(2400, ge=1, le=1_000_000)  # images rendered by the shapes source (ignored by the others)
    seed: Seed = 0  # seeds the shapes renderer
    shape_size: tuple[float, float] = (0.18, 0.34)  # shapes source: range of each shape's radius (a circle's; a square's circumradius is 0.9x it, a triangle's 1.1x), as a fraction of the resolution

    @field_validator("shape_size")
    @classmethod
    def _shape_size_range(cls, size: tuple[float, float]) -> tuple[float, float]:
        low, high = size
        if not 0.05 <= low <= high <= 0.45:
            raise ValueError("must be [low, high] with 0.05 <= low <= high <= 0.45 (a shape must fit the image)")
        return size


SHAPE_SIZE = ShapesOptions.model_fields["shape_size"].default  # range of a shape's radius / resolution


def iter_shapes(num_images: int, resolution: int, seed: int,
                size: tuple[float, float] = SHAPE_SIZE) -> Iterator[tuple[np.ndarray, int]]:
    """Yield (pixels (H, W, 3) uint8, label) one image at a time; `render_shapes` collects these.

    `size` is the range of each shape's radius as a fraction of `resolution`. Labels are balanced (each
    class appears N // K or N // K + 1 times) in a seeded order; the same arguments always give the same bytes.
    """
    if not 16 <= resolution <= 256:
        raise ValueError(f"resolution={resolution}: shapes renders 16 to 256 pixels")
    if num_images < 1:
        raise ValueError(f"num_images={num_images}: need at least one image")
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(num_images) % len(CLASS_NAMES))
    for label in labels:
        colour, shape = CLASS_NAMES[label].split("_")
        yield _render_one(rng, resolution, shape, colour, size), int(label)


def render_shapes(num_images: int, resolution: int, seed: int,
                  size: tuple[float, float] = SHAPE_SIZE) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Render `num_images` images: (N, H, W, 3) uint8 pixels, int64 labels, and the class names."""
    pixels = np.empty((num_images, resolution, resolution, 3), dtype=np.uint8)
    labels = np.empty(num_images, dtype=np.int64)
    for i, (image, label) in enumerate(iter_shapes(num_images, resolution, seed, size)):
        pixels[i], labels[i] = image, label
    return pixels, labels, list(CLASS_NAMES)


def shapes_source(options: ShapesOptions, resolution: int) -> Source:
    """`data.num_images` shapes at `data.resolution` and `data.shape_size`, seeded by `data.seed`,
    rendered as they are read."""

    def items() -> Iterator[SourceItem]:
        shapes = iter_shapes(options.num_images, resolution, options.seed, options.shape_size)
        for i, (image, label) in enumerate(shapes):
            yield SourceItem(f"shapes-{i:06d}", image, label, f"shapes(seed={options.seed})[{i}]")

    return Source("shapes", list(CLASS_NAMES), items)


SOURCE = SourceSpec("shapes", ShapesOptions, shapes_source)
