"""Does a class-conditional generator obey its label? Conditional accuracy and the CAS ratio."""
from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch


@dataclass(frozen=True)
class ConditionalAccuracy:
    overall: float  # share of all generated samples classified as their requested label
    per_class: list[float | None]  # the same share per requested class; None where none was requested
    counts: list[int]  # generated samples requested per class


def conditional_accuracy(predicted: torch.Tensor | np.ndarray, requested: torch.Tensor | np.ndarray,
                         num_classes: int) -> ConditionalAccuracy:
    """Share of generated images the classifier assigns to the label they were generated for."""
    predicted, requested = torch.as_tensor(predicted).long().cpu(), torch.as_tensor(requested).long().cpu()
    assert predicted.shape == requested.shape and predicted.ndim == 1, (
        f"predicted {tuple(predicted.shape)} and requested {tuple(requested.shape)} must be equal-length 1-D label arrays")
    assert len(requested) > 0, "conditional accuracy needs at least one sample"
    correct = (predicted == requested).double()
    counts = torch.bincount(requested, minlength=num_classes)
    hits = torch.bincount(requested, weights=correct, minlength=num_classes)
    per_class = [(h / c).item() if c > 0 else None for h, c in zip(hits, counts)]
    return ConditionalAccuracy(correct.mean().item(), per_class, counts.tolist())


def cas_ratio(synthetic_trained_accuracy: float, real_trained_accuracy: float) -> float:
    """Classification Accuracy Score ratio (Ravuri & Vinyals 2019).

    CAS is the real-test accuracy of a classifier trained only on generated data; dividing it by
    the accuracy of the same classifier trained on real data gives 1.0 for a perfect generator.
    """
    assert real_trained_accuracy > 0, "the real-trained accuracy must be positive to form the CAS ratio"
    return synthetic_trained_accuracy / real_trained_accuracy


def mean_over_runs(accuracies: Sequence[float]) -> tuple[float, float]:
    """The mean accuracy of classifier runs that differ only in their seed (one side of CAS), and their sample
    standard deviation (0 for one run)."""
    return statistics.fmean(accuracies), statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0
