"""The evaluate stage's report page: which metrics appear, with which baseline, and which samples are shown."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from synthgen.metrics.gate import GateVerdict
from synthgen.metrics.memorisation import Memorisation
from synthgen.metrics.report import FilterClassRow, MetricRow, NeighbourDistances, worst_near_duplicates, write_report
from synthgen.metrics.specs import FILTER_CLASS_ACCEPTANCE, FILTER_CLASS_RAW_ACCURACY, SPACE_LABELS, report_metrics
from synthgen.metrics.utility import UtilityPoint


def metric_rows(m: Mapping[str, Any], space: str) -> list[MetricRow]:
    """The metrics table, from the metric specs: each row with its real-versus-real baseline where it has one."""
    return [MetricRow(spec.label, m[spec.key], m.get(spec.baseline_key), spec.lower_is_better, note)
            for spec, note in report_metrics(m, space)]


def filter_rows(m: Mapping[str, Any], per_class: Mapping[str, Mapping[str, Any]]) -> list[FilterClassRow]:
    """One row per class: the filter's acceptance rate and raw accuracy, the evaluator's accuracy (none without a filter)."""
    acceptance, raw = m.get(FILTER_CLASS_ACCEPTANCE.key), m.get(FILTER_CLASS_RAW_ACCURACY.key) or {}
    if acceptance is None:
        return []
    return [FilterClassRow(name, acceptance.get(name), raw.get(name), c["accuracy"]) for name, c in per_class.items()]


def galleries(pixels: np.ndarray, labels: np.ndarray, class_names: Sequence[str], per_class: int) -> dict[str, np.ndarray]:
    """The first `per_class` samples of every class that has any."""
    shown = {name: pixels[np.flatnonzero(labels == c)[:per_class]] for c, name in enumerate(class_names)}
    return {name: p for name, p in shown.items() if len(p)}


def write_evaluation_report(path: str | Path, *, verdict: GateVerdict, metrics: Mapping[str, Any],
                            per_class: Mapping[str, Mapping[str, Any]], memo: Memorisation, space: str,
                            generated: np.ndarray, requested: np.ndarray, train: np.ndarray,
                            class_names: Sequence[str], details: Mapping[str, Any], per_class_shown: int,
                            worst_pairs: int, quality_vs_steps: Mapping[str, Sequence[tuple[float, float]]] | None,
                            utility: Sequence[UtilityPoint] = ()) -> None:
    """Render the whole page with `synthgen.metrics.report` and write it atomically."""
    write_report(
        path,
        title="Synthetic dataset evaluation",
        verdict=verdict,
        metrics=metric_rows(metrics, space),
        details=details,
        galleries=galleries(generated, requested, class_names, per_class_shown),
        per_class_accuracy={name: c["accuracy"] for name, c in per_class.items()},
        nn_distances=NeighbourDistances.from_memorisation(memo),
        near_duplicates=worst_near_duplicates(memo, generated, train, worst_pairs,
                                              [class_names[c] for c in requested]) if worst_pairs else (),
        quality_vs_steps=quality_vs_steps,
        quality_label="conditional accuracy",
        utility=utility,
        filter_classes=filter_rows(metrics, per_class),
        distance_space=SPACE_LABELS[space],
    )
