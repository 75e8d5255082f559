"""Augmentation utility: does adding the synthetic set to n real training images raise real val accuracy?

For each fraction f of the real train split, n = round(f * N) real images train one classifier alone
and one with the synthetic set added, with the same architecture, schedule and seeds; both are
tested on real val. The gain is the second accuracy minus the first: above 0 the synthetic data
helps at that n, below 0 it hurts (label noise, off-distribution images). The classifier runs
themselves are the caller's (`accuracy`), so this module stays a pure function of their results.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

# (n, with the synthetic set) -> real val accuracy of a classifier trained on the first n real images
Accuracy = Callable[[int, bool], float]


@dataclass(frozen=True)
class UtilityPoint:
    fraction: float  # share of the real train split
    real_count: int  # n: the real training images of both runs
    real_accuracy: float  # real val accuracy, trained on the n real images alone
    augmented_accuracy: float  # real val accuracy, trained on the n real images plus the synthetic set

    @property
    def gain(self) -> float:
        return self.augmented_accuracy - self.real_accuracy

    @property
    def label(self) -> str:
        """The fraction as a metrics.json key suffix: 0.05 -> "5pct"."""
        return f"{self.fraction * 100:g}pct".replace(".", "_")


def real_count(fraction: float, num_train: int) -> int:
    """n for `fraction` of `num_train` real images: rounded, and at least one image."""
    return max(1, round(fraction * num_train))


def utility_runs(fractions: Sequence[float], num_train: int) -> list[tuple[int, bool]]:
    """The classifier runs the curve needs, as (n, with the synthetic set): two per fraction."""
    return [(real_count(fraction, num_train), with_synthetic) for fraction in fractions for with_synthetic in (False, True)]


def measure_utility(fractions: Sequence[float], num_train: int, accuracy: Accuracy) -> list[UtilityPoint]:
    """One point per fraction: the real val accuracy with and without the synthetic set."""
    points = []
    for fraction in fractions:
        n = real_count(fraction, num_train)
        points.append(UtilityPoint(fraction, n, accuracy(n, False), accuracy(n, True)))
    return points


def utility_metrics(points: Sequence[UtilityPoint], synthetic_count: int, steps: int) -> dict[str, float | int]:
    """The flat metrics.json keys: both accuracies, n and the gain per fraction, and the gains at the
    smallest and the largest n (the headline: where synthetic data should help most, and where least)."""
    metrics: dict[str, float | int] = {"utility_synthetic_count": synthetic_count, "utility_steps": steps}
    for p in points:
        metrics.update({f"utility_real_count_{p.label}": p.real_count,
                        f"utility_real_accuracy_{p.label}": p.real_accuracy,
                        f"utility_augmented_accuracy_{p.label}": p.augmented_accuracy,
                        f"utility_gain_{p.label}": p.gain})
    smallest, largest = min(points, key=lambda p: p.real_count), max(points, key=lambda p: p.real_count)
    metrics.update({"utility_gain_smallest_n": smallest.gain, "utility_smallest_n": smallest.real_count,
                    "utility_gain_largest_n": largest.gain, "utility_largest_n": largest.real_count})
    return metrics
