"""Plot data that `dvc plots show` renders (CSV with a header row) and the per-class sample grid."""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from synthgen.atomic import atomic_write_bytes
from synthgen.imaging import save_grid
from synthgen.metrics.utility import UtilityPoint

GRID_MIN_PIXELS = 64  # grid tiles are enlarged (nearest neighbour) to at least this many pixels a side


def write_csv(path: str | Path, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A CSV file with a header row, written atomically; floats keep 6 significant digits, None is empty."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if v is None else f"{v:.6g}" if isinstance(v, float) else v for v in row])
    atomic_write_bytes(path, buf.getvalue().encode())


def write_per_class_accuracy(path: str | Path, per_class: Mapping[str, Mapping[str, float | int | None]]) -> None:
    """One row per requested class: conditional accuracy beside the classifier's real val accuracy."""
    rows = [(name, c["accuracy"], c["real_val_accuracy"], c["requested"])
            for name, c in per_class.items() if c["accuracy"] is not None]
    write_csv(path, ("class_name", "conditional_accuracy", "real_val_accuracy", "requested"), rows)


def distance_histogram(real: np.ndarray, generated: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bin centres and the share of each set per bin, on bins shared by both sets."""
    edges = np.histogram_bin_edges(np.concatenate([real, generated]), bins=bins)
    share = lambda v: np.histogram(v, bins=edges)[0] / max(len(v), 1)  # noqa: E731
    return (edges[:-1] + edges[1:]) / 2, share(real), share(generated)


def write_nn_distances(path: str | Path, real: np.ndarray, generated: np.ndarray, bins: int) -> None:
    """Histogram of nearest-training-image distances: real val against generated, as shares per bin."""
    centres, real_share, generated_share = distance_histogram(real, generated, bins)
    rows = [(float(c), float(r), float(g)) for c, r, g in zip(centres, real_share, generated_share)]
    write_csv(path, ("distance", "real_val", "generated"), rows)


def write_quality_vs_steps(path: str | Path, curves: Mapping[str, Sequence[tuple[float, float]]]) -> None:
    """One row per step count, one column per sampler (empty where a sampler skipped that count)."""
    samplers = list(curves)
    by_steps: dict[float, dict[str, float]] = {}
    for sampler, points in curves.items():
        for steps, value in points:
            by_steps.setdefault(steps, {})[sampler] = float(value)
    rows = [(int(steps) if float(steps).is_integer() else steps, *(by_steps[steps].get(s) for s in samplers))
            for steps in sorted(by_steps)]
    write_csv(path, ("steps", *samplers), rows)


def write_utility(path: str | Path, points: Sequence[UtilityPoint]) -> None:
    """One row per n real training images: real val accuracy without and with the synthetic set, and the gain."""
    rows = [(p.real_count, p.fraction, p.real_accuracy, p.augmented_accuracy, p.gain) for p in points]
    write_csv(path, ("real_count", "fraction", "real_only", "real_plus_synthetic", "gain"), rows)


def class_rows(pixels: np.ndarray, labels: np.ndarray, num_classes: int, per_class: int) -> np.ndarray:
    """The first `per_class` images of each class, one class after another; white tiles fill short classes."""
    blank = np.full(pixels.shape[1:], 255, np.uint8)
    rows = []
    for c in range(num_classes):
        chosen = list(pixels[np.flatnonzero(labels == c)[:per_class]])
        rows += chosen + [blank] * (per_class - len(chosen))
    return np.stack(rows)


def save_class_grid(path: str | Path, pixels: np.ndarray, labels: np.ndarray, num_classes: int, per_class: int) -> None:
    """A PNG with one row per class (in label order) of that class's first samples."""
    scale = max(1, -(-GRID_MIN_PIXELS // pixels.shape[1]))
    save_grid(class_rows(pixels, labels, num_classes, per_class), path, nrow=per_class, scale=scale)
