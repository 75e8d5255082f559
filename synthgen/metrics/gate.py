"""The quality gate: publish a generated dataset only if every metric clears its threshold.

It fails closed: a metric that is missing or not a finite number rejects the dataset. A per-class
metric is checked class by class (classes not requested are skipped), each check naming its class.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal, Mapping

from synthgen.config.evaluate import GateConfig
from synthgen.metrics.specs import GATED, MetricSpec


@dataclass(frozen=True)
class GateCheck:
    metric: str  # key in the metrics dict
    value: float | None  # what was measured; None when missing
    bound: Literal["min", "max"]  # whether the limit is a floor or a ceiling
    limit: float
    passed: bool
    subject: str | None = None  # the class a per-class check is about

    def describe(self) -> str:
        prefix = "" if self.subject is None else f"class {self.subject}: "
        if self.value is None or not math.isfinite(self.value):
            return f"{prefix}{self.metric} is {'missing' if self.value is None else self.value}; it must be measured"
        relation = ">=" if self.bound == "min" else "<="
        verdict = "ok" if self.passed else "fails"
        return f"{prefix}{self.metric} = {self.value:.4g} {verdict}: must be {relation} {self.limit:.4g}"


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


def check_value(metric: str, value: float | None, bound: Literal["min", "max"], limit: float,
                subject: str | None = None) -> GateCheck:
    """`value` against its limit; a value that is None or not finite fails."""
    value = None if value is None else float(value)
    measured = value is not None and math.isfinite(value)
    passed = measured and (value >= limit if bound == "min" else value <= limit)
    return GateCheck(metric, value, bound, limit, passed, subject)


def run_check(metrics: Mapping[str, Any], metric: str, bound: Literal["min", "max"], limit: float) -> GateCheck:
    return check_value(metric, metrics.get(metric), bound, limit)


def per_class_checks(metrics: Mapping[str, Any], spec: MetricSpec, limit: float) -> list[GateCheck]:
    """One check per requested class of a per-class metric; a missing or empty table is one failed check."""
    values = metrics.get(spec.key)
    requested = {name: v for name, v in values.items() if v is not None} if isinstance(values, Mapping) else {}
    if not requested:
        return [check_value(spec.key, None, spec.bound, limit)]
    return [check_value(spec.key, v, spec.bound, limit, subject=name) for name, v in requested.items()]


def spec_checks(metrics: Mapping[str, Any], spec: MetricSpec, limit: float) -> list[GateCheck]:
    """The checks of one gated metric: one, or one per class."""
    return per_class_checks(metrics, spec, limit) if spec.per_class else [run_check(metrics, spec.key, spec.bound, limit)]


def evaluate_gate(metrics: Mapping[str, Any], thresholds: GateConfig) -> GateVerdict:
    """Check every gated metric of `synthgen.metrics.specs` whose threshold is set, in table order.

    `metrics` is metrics.json: numbers, and per-class metrics as {class name: number}."""
    checks = [check for spec in GATED if (limit := getattr(thresholds, spec.threshold)) is not None
              for check in spec_checks(metrics, spec, limit)]
    reasons = [c.describe() for c in checks if not c.passed]
    return GateVerdict("rejected" if reasons else "published", reasons, checks)


def fd_ratio(fd_generated: float, fd_real_baseline: float) -> float:
    """Generated FD over the real-vs-real FD; infinite when the baseline is degenerate."""
    return fd_generated / fd_real_baseline if fd_real_baseline > 0 else math.inf
