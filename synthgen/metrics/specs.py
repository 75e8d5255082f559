"""The table of metrics: one `MetricSpec` per metrics.json key that anything downstream shows or gates.

The gate, the HTML report's metrics table, the releases index columns, the Prefect run artifact and
`synthgen inspect` all read this table, in its order. To gate a new metric: compute it (under its
key) in `synthgen/evaluation/scores.py`, add its row here, and its threshold field to `GateConfig`.
A per-class metric's metrics.json value maps each class name to its value (null for a class not
requested); the gate checks every class and names the one that fails.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Mapping

SPACE_LABELS = {"features": "classifier features", "pixels": "pixels, L2 in [-1, 1] units"}


@dataclass(frozen=True)
class MetricSpec:
    key: str  # key in metrics.json; its real-versus-real baseline, if any, is `{key}_baseline`
    label: str  # row name in the report
    description: str  # the report's note; `{name}` fields are filled from metrics.json
    lower_is_better: bool | None  # None when neither direction is better
    fmt: str = ".4g"  # format spec of the value in the run artifact
    threshold: str | None = None  # the GateConfig field holding its limit; None: not gated
    report: bool = False  # a row of the report's metrics table
    index: bool = False  # a column of releases/index.parquet
    artifact: bool = False  # a row of the Prefect run artifact
    inspect: bool = False  # a column of `synthgen inspect releases/`
    space: str | None = None  # memorisation space the metric is measured in, if it has one
    gate_space_only: bool = False  # report it for the configured evaluate.memorisation_space only
    gates_as: str | None = None  # measured in the configured memorisation space, the gate reads it under this key
    per_class: bool = False  # its value is {class name: value}; the gate checks each class

    @property
    def bound(self) -> Literal["min", "max"]:
        """Whether the gate's limit is a floor (higher is better) or a ceiling."""
        return "max" if self.lower_is_better else "min"

    @property
    def baseline_key(self) -> str:
        return baseline_key(self.key)


def baseline_key(key: str) -> str:
    """The metrics.json key of a metric's real-versus-real baseline."""
    return f"{key}_baseline"


def near_duplicate_spec(space: str) -> MetricSpec:
    return MetricSpec(f"near_duplicate_fraction_{space}", f"Near-duplicate share ({SPACE_LABELS[space]})",
                      "threshold calibrated on real val to train", True, report=True, space=space,
                      gates_as="near_duplicate_fraction")


def median_distance_spec(space: str) -> MetricSpec:
    return MetricSpec(f"nn_distance_median_{space}", f"Median distance to train ({SPACE_LABELS[space]})",
                      "lower than the baseline hints at copying", None, report=True, space=space,
                      gate_space_only=True)


CONDITIONAL_ACCURACY = MetricSpec(  # also drawn per class in the report, against the gate's minimum
    "conditional_accuracy", "Conditional accuracy",
    "share classified as the requested class; baseline: the classifier on real val", False,
    threshold="min_conditional_accuracy", report=True, index=True, artifact=True, inspect=True)

CLASS_ACCURACY = MetricSpec(  # drawn as the report's per-class bars
    "conditional_accuracy_per_class", "Conditional accuracy per class", "share of each class classified as requested",
    False, threshold="min_class_accuracy", per_class=True)
WORST_CLASS_ACCURACY = MetricSpec(
    "conditional_accuracy_worst_class", "Worst class accuracy", "conditional accuracy of the least faithful class",
    False, report=True, index=True, artifact=True)

# The sample filter's figures, from the synthetic manifest's "filter" record (absent without a filter).
# They measure the generator as the filter saw it; conditional accuracy is the independent evaluator's.
FILTER_ACCEPTANCE = MetricSpec(
    "filter_acceptance_rate", "Filter acceptance rate",
    "share of the generator's attempts the sample filter accepted: its raw quality as the filter sees it", False,
    report=True, index=True, artifact=True)
FILTER_CLASS_ACCEPTANCE = MetricSpec(
    "filter_acceptance_rate_per_class", "Filter acceptance rate per class", "acceptance rate of each requested class",
    False, per_class=True)
FILTER_WORST_CLASS_ACCEPTANCE = MetricSpec(
    "filter_acceptance_rate_worst_class", "Worst class filter acceptance", "acceptance rate of the class the filter "
    "rejected most", False, report=True, artifact=True)
FILTER_RAW_ACCURACY = MetricSpec(
    "filter_raw_accuracy", "Filter raw accuracy",
    "share of attempts the filter assigned to the requested class, before its confidence threshold", False, report=True)
FILTER_CLASS_RAW_ACCURACY = MetricSpec(
    "filter_raw_accuracy_per_class", "Filter raw accuracy per class", "raw accuracy of each requested class", False,
    per_class=True)

METRICS: tuple[MetricSpec, ...] = (
    CONDITIONAL_ACCURACY,
    CLASS_ACCURACY,
    WORST_CLASS_ACCURACY,
    FILTER_ACCEPTANCE,
    FILTER_CLASS_ACCEPTANCE,
    FILTER_WORST_CLASS_ACCEPTANCE,
    FILTER_RAW_ACCURACY,
    FILTER_CLASS_RAW_ACCURACY,
    MetricSpec("fd_ratio", "FD ratio", "FD(generated, train) / FD(real val, train)", True,
               threshold="max_fd_ratio", index=True, artifact=True, inspect=True),
    MetricSpec("near_duplicate_fraction", "Near-duplicate share",
               "share closer to a training image than the calibrated threshold, in evaluate.memorisation_space",
               True, threshold="max_near_duplicate_fraction", index=True, artifact=True, inspect=True),
    MetricSpec("cas_ratio", "CAS ratio", "CAS accuracy / real-trained accuracy", False,
               threshold="min_cas_ratio", index=True, artifact=True),
    MetricSpec("fd", "FD (classifier features)", "to train; generated in val-sized subsets; baseline: real val", True,
               report=True, index=True),
    MetricSpec("kid", "KID (classifier features)", "unbiased MMD², {kid_subset_size} per subset; about 0 for real data",
               True, report=True, index=True, artifact=True),
    MetricSpec("precision", "Precision", "share inside the train manifold (fidelity)", False,
               report=True, index=True, artifact=True),
    MetricSpec("recall", "Recall", "share of train covered (diversity)", False, report=True, index=True, artifact=True),
    MetricSpec("utility_gain_smallest_n", "Utility gain, fewest real", "real val accuracy with the synthetic set minus "
               "without, trained on {utility_smallest_n} real images", False, fmt="+.3f", report=True, index=True,
               artifact=True),
    MetricSpec("utility_gain_largest_n", "Utility gain, most real", "real val accuracy with the synthetic set minus "
               "without, trained on {utility_largest_n} real images", False, fmt="+.3f", report=True, index=True,
               artifact=True),
    MetricSpec("cas_accuracy", "CAS accuracy",
               "mean of {cas_runs} runs (seeds; std {cas_accuracy_std:.3f}), each trained on {cas_train_count} "
               "synthetic images, tested on real val; baseline: as many real", False, report=True),
    *(near_duplicate_spec(space) for space in SPACE_LABELS),
    *(median_distance_spec(space) for space in SPACE_LABELS),
    MetricSpec("fid", "FID (Inception)", "to train; generated in val-sized subsets", True, report=True),
)

GATED = tuple(m for m in METRICS if m.threshold)
INDEX_METRICS = tuple(m.key for m in METRICS if m.index)
ARTIFACT_METRICS = tuple(m for m in METRICS if m.artifact)
INSPECT_METRICS = tuple(m.key for m in METRICS if m.inspect)


def space_aliases(gate_space: str) -> dict[str, str]:
    """metrics.json key -> the key the gate reads it under, for the configured memorisation space."""
    return {m.key: m.gates_as for m in METRICS if m.gates_as and m.space == gate_space}


def report_metrics(metrics: Mapping[str, object], gate_space: str) -> list[tuple[MetricSpec, str]]:
    """The report's rows that `metrics` has, each with its note; a row the gate reads through
    `gates_as` says so."""
    rows = []
    for spec in METRICS:
        if not spec.report or spec.key not in metrics or (spec.gate_space_only and spec.space != gate_space):
            continue
        gated = spec.gates_as is not None and spec.space == gate_space
        rows.append((spec, ("gated; " if gated else "") + spec.description.format(**metrics)))
    return rows
