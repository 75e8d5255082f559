"""The quality gate: publish a generated dataset only if every metric clears its threshold.

It fails closed: a metric that is missing or not a finite number rejects the dataset.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal, Mapping

from synthgen.config.evaluate import GateConfig
from synthgen.metrics.specs import GATED


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
    """Check every gated metric of `synthgen.metrics.specs` whose threshold is set, in table order."""
    checks = [run_check(metrics, spec.key, spec.bound, limit) for spec in GATED
              if (limit := getattr(thresholds, spec.threshold)) is not None]
    reasons = [c.describe() for c in checks if not c.passed]
    return GateVerdict("rejected" if reasons else "published", reasons, checks)


def fd_ratio(fd_generated: float, fd_real_baseline: float) -> float:
    """Generated FD over the real-vs-real FD; infinite when the baseline is degenerate."""
    return fd_generated / fd_real_baseline if fd_real_baseline > 0 else math.inf
