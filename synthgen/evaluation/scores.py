"""The evaluate stage's numbers: each metric of the generated set beside its real-versus-real baseline.

Every distance is to the real training set. The baseline is the same metric for the held-out real
val set, so a perfect generator scores like val. FD and precision/recall depend on the sample
size, so the generated set is cut into disjoint subsets as large as val and those are averaged.
"""
from __future__ import annotations

import statistics
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from synthgen.config.evaluate import EvaluateConfig
from synthgen.metrics.conditional import cas_ratio, conditional_accuracy, mean_over_runs
from synthgen.metrics.frechet import frechet_distance
from synthgen.metrics.gate import fd_ratio
from synthgen.metrics.kid import kernel_inception_distance
from synthgen.metrics.memorisation import Memorisation
from synthgen.metrics.precision_recall import precision_recall
from synthgen.metrics.specs import CLASS_ACCURACY, CONDITIONAL_ACCURACY, WORST_CLASS_ACCURACY, baseline_key, space_aliases
from synthgen.seeds import derive_seed


def mean(values: Sequence[float]) -> float:
    return statistics.fmean(values)


def fd_with_baseline(train: torch.Tensor, val: torch.Tensor, generated: torch.Tensor,
                     subsets: Sequence[np.ndarray], name: str = "fd") -> dict[str, float]:
    """FD(generated, train) averaged over val-sized subsets (and its spread over them), and FD(val, train)."""
    values = [frechet_distance(generated[s], train) for s in subsets]
    value, baseline = mean(values), frechet_distance(val, train)
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return {name: value, f"{name}_std": spread, baseline_key(name): baseline, f"{name}_ratio": fd_ratio(value, baseline)}


def kid_with_baseline(train: torch.Tensor, val: torch.Tensor, generated: torch.Tensor, cfg: EvaluateConfig) -> dict[str, float]:
    """KID (Binkowski et al. 2018) against train for both sets, with one subset size for both."""
    size = min(cfg.kid_subset_size, len(generated), len(val), len(train))
    kid_seed, baseline_seed = derive_seed(cfg.seed, "evaluate/kid_subsets"), derive_seed(cfg.seed, "evaluate/kid_baseline_subsets")
    kid = kernel_inception_distance(generated, train, cfg.kid_subsets, size, torch.Generator().manual_seed(kid_seed))
    baseline = kernel_inception_distance(val, train, cfg.kid_subsets, size,
                                         torch.Generator().manual_seed(baseline_seed))
    return {"kid": kid.mean, "kid_std": kid.std, "kid_baseline": baseline.mean, "kid_baseline_std": baseline.std,
            "kid_subset_size": size}


def precision_recall_with_baseline(train: torch.Tensor, val: torch.Tensor, generated: torch.Tensor,
                                   subsets: Sequence[np.ndarray], cfg: EvaluateConfig) -> dict[str, float]:
    """Improved precision/recall (Kynkäänniemi et al. 2019) against the train manifold, averaged over subsets."""
    scores = [precision_recall(train, generated[s], cfg.pr_k, cfg.distance_chunk) for s in subsets]
    baseline = precision_recall(train, val, cfg.pr_k, cfg.distance_chunk)
    return {"precision": mean([s.precision for s in scores]), "precision_baseline": baseline.precision,
            "recall": mean([s.recall for s in scores]), "recall_baseline": baseline.recall}


def conditional_with_baseline(predicted: torch.Tensor, requested: np.ndarray, val_predicted: torch.Tensor,
                              val_labels: np.ndarray, class_names: list[str]) -> tuple[dict[str, Any], dict[str, dict]]:
    """Share of generated images classified as requested, overall, per class and for the worst class;
    the baselines are the classifier's real val accuracies.

    Returns the metrics and a per-class table {class: {accuracy, real_val_accuracy, requested}}.
    """
    generated = conditional_accuracy(predicted, torch.as_tensor(requested), len(class_names))
    real = conditional_accuracy(val_predicted, torch.as_tensor(val_labels), len(class_names))
    per_class = {name: {"accuracy": g, "real_val_accuracy": r, "requested": n}
                 for name, g, r, n in zip(class_names, generated.per_class, real.per_class, generated.counts)}
    metrics = {CONDITIONAL_ACCURACY.key: generated.overall, CONDITIONAL_ACCURACY.baseline_key: real.overall,
               CLASS_ACCURACY.key: dict(zip(class_names, generated.per_class)),
               WORST_CLASS_ACCURACY.key: worst(generated.per_class), WORST_CLASS_ACCURACY.baseline_key: worst(real.per_class)}
    return metrics, per_class


def worst(per_class: Sequence[float | None]) -> float:
    """The lowest accuracy of the classes that have one."""
    return min(v for v in per_class if v is not None)


def memorisation_summary(memo: Memorisation, measured: np.ndarray, space: str) -> dict[str, float]:
    """Near-duplicate share of the `measured` generated samples and of real val (about the quantile by
    construction), the calibrated threshold, and median nearest-neighbour distances, for one space."""
    distances = memo.distances[torch.as_tensor(measured)]
    return {
        f"near_duplicate_fraction_{space}": (distances <= memo.threshold).double().mean().item(),
        f"near_duplicate_fraction_{space}_baseline": (memo.real_distances <= memo.threshold).double().mean().item(),
        f"near_duplicate_threshold_{space}": memo.threshold,
        f"nn_distance_median_{space}": distances.median().item(),
        f"nn_distance_median_{space}_baseline": memo.real_distances.median().item(),
    }


def gate_space_aliases(metrics: dict[str, float], space: str) -> dict[str, float]:
    """The keys the gate reads (with their baselines), taken from the space named by `evaluate.memorisation_space`."""
    aliases = {}
    for key, alias in space_aliases(space).items():
        aliases.update({alias: metrics[key], baseline_key(alias): metrics[baseline_key(key)]})
    return aliases


def cas_metrics(cas_accuracies: Sequence[float], train_count: int, reference: Mapping[str, Any]) -> dict[str, Any]:
    """Classification Accuracy Score (Ravuri & Vinyals 2019) beside the real-trained reference (train_classifier's
    metrics): the mean real val accuracy of each side's runs, which differ only in their seed, their spread, and
    the ratio of the means."""
    (cas_accuracy, spread), reference_accuracy = mean_over_runs(cas_accuracies), reference["cas_reference_accuracy"]
    ratio = cas_ratio(cas_accuracy, reference_accuracy) if reference_accuracy > 0 else float("nan")
    return {"cas_accuracy": cas_accuracy, "cas_accuracy_baseline": reference_accuracy, "cas_ratio": ratio,
            "cas_accuracy_std": spread,
            "cas_accuracy_baseline_std": reference["cas_reference_accuracy_std"], "cas_runs": len(cas_accuracies),
            "cas_train_count": train_count, "cas_baseline_train_count": reference["cas_reference_train_count"]}

