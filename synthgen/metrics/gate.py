"""The quality gate: publish a generated dataset only if every metric clears its threshold.

It fails closed: a metric that is missing or not a finite number rejects the dataset.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal, Mapping

import torch

from synthgen.config.evaluate import GateConfig
from synthgen.metrics.conditional import conditional_accuracy
from synthgen.metrics.frechet import Features, frechet_distance
from synthgen.metrics.memorisation import memorisation

CONDITIONAL_ACCURACY = "conditional_accuracy"
FD_RATIO = "fd_ratio"
NEAR_DUPLICATE_FRACTION = "near_duplicate_fraction"
CAS_RATIO = "cas_ratio"


@dataclass(frozen=True)
class GateCheck:
    metric: str  # key in the metrics dict
    value: float | None  # what was measured; None when missing
    bound: Literal["min", "max"]  # whether the limit is a floor or a ceiling
    limit: float
    passed: bool

    def describe(self) -> str:
        if self.value is None or not math.isfinite(self.value):
            return f"{self.metric} is {'missing' if self.value is None else self.value}; it must be measured"
        relation = ">=" if self.bound == "min" else "<="
        verdict = "ok" if self.passed else "fails"
        return f"{self.metric} = {self.value:.4g} {verdict}: must be {relation} {self.limit:.4g}"


@dataclass(frozen=True)
class GateVerdict:
    status: Literal["published", "rejected"]
    reasons: list[str]  # one line per failed check; empty when published
    checks: list[GateCheck]  # every check that ran, passed or not

    @property
    def published(self) -> bool:
        return self.status == "published"

    def to_dict(self) -> dict:
        return {"status": self.status, "reasons": self.reasons, "checks": [asdict(c) for c in self.checks]}


def run_check(metrics: Mapping[str, float | None], metric: str, bound: Literal["min", "max"], limit: float) -> GateCheck:
    value = metrics.get(metric)
    value = None if value is None else float(value)
    measured = value is not None and math.isfinite(value)
    passed = measured and (value >= limit if bound == "min" else value <= limit)
    return GateCheck(metric, value, bound, limit, passed)


def evaluate_gate(metrics: Mapping[str, float | None], thresholds: GateConfig) -> GateVerdict:
    """Check conditional accuracy, FD ratio, near-duplicate fraction (and CAS ratio if configured)."""
    checks = [
        run_check(metrics, CONDITIONAL_ACCURACY, "min", thresholds.min_conditional_accuracy),
        run_check(metrics, FD_RATIO, "max", thresholds.max_fd_ratio),
        run_check(metrics, NEAR_DUPLICATE_FRACTION, "max", thresholds.max_near_duplicate_fraction),
    ]
    if thresholds.min_cas_ratio is not None:
        checks.append(run_check(metrics, CAS_RATIO, "min", thresholds.min_cas_ratio))
    reasons = [c.describe() for c in checks if not c.passed]
    return GateVerdict("rejected" if reasons else "published", reasons, checks)


def fd_ratio(fd_generated: float, fd_real_baseline: float) -> float:
    """Generated FD over the real-vs-real FD; infinite when the baseline is degenerate."""
    return fd_generated / fd_real_baseline if fd_real_baseline > 0 else math.inf


def gate_metrics(
    train_features: Features,
    val_features: Features,
    generated_features: Features,
    requested: torch.Tensor,
    predicted: torch.Tensor,
    num_classes: int,
    memorisation_quantile: float = 0.01,
    chunk_size: int = 1024,
) -> dict[str, float]:
    """The metrics the gate reads, all in one feature space, from features and labels.

    FD baseline: FD(real val, train); generated: FD(generated, train). FD is biased upwards by
    finite N, so pass as many generated samples as val samples for a fair ratio.
    """
    fd_generated = frechet_distance(generated_features, train_features)
    fd_baseline = frechet_distance(val_features, train_features)
    memo = memorisation(generated_features, train_features, val_features, memorisation_quantile, chunk_size)
    return {
        CONDITIONAL_ACCURACY: conditional_accuracy(predicted, requested, num_classes).overall,
        "fd": fd_generated,
        "fd_baseline": fd_baseline,
        FD_RATIO: fd_ratio(fd_generated, fd_baseline),
        NEAR_DUPLICATE_FRACTION: memo.near_duplicate_fraction,
        "near_duplicate_threshold": memo.threshold,
    }
