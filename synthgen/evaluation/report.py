"""The evaluate stage's report page: which metrics appear, with which baseline, and which samples are shown."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from synthgen.metrics.gate import GateVerdict
from synthgen.metrics.memorisation import Memorisation
from synthgen.metrics.report import MetricRow, NeighbourDistances, worst_near_duplicates, write_report

SPACE_LABELS = {"features": "classifier features", "pixels": "pixels, L2 in [-1, 1] units"}


def metric_rows(m: Mapping[str, Any], space: str) -> list[MetricRow]:
    """The metrics table: each row with its real-versus-real baseline where it has one."""
    rows = [
        MetricRow("Conditional accuracy", m["conditional_accuracy"], m["conditional_accuracy_baseline"], False,
                  "share classified as the requested class; baseline: the classifier on real val"),
        MetricRow("FD (classifier features)", m["fd"], m["fd_baseline"], True,
                  "to train; generated in val-sized subsets; baseline: real val"),
        MetricRow("KID (classifier features)", m["kid"], m["kid_baseline"], True,
                  f"unbiased MMD², {m['kid_subset_size']} per subset; about 0 for real data"),
        MetricRow("Precision", m["precision"], m["precision_baseline"], False, "share inside the train manifold (fidelity)"),
        MetricRow("Recall", m["recall"], m["recall_baseline"], False, "share of train covered (diversity)"),
        MetricRow("CAS accuracy", m["cas_accuracy"], m["cas_accuracy_baseline"], False,
                  f"trained on {m['cas_train_count']} synthetic images, tested on real val; baseline: as many real"),
    ]
    for s in ("features", "pixels"):
        rows.append(MetricRow(f"Near-duplicate share ({SPACE_LABELS[s]})", m[f"near_duplicate_fraction_{s}"],
                              m[f"near_duplicate_fraction_{s}_baseline"], True,
                              ("gated; " if s == space else "") + "threshold calibrated on real val to train"))
    rows.append(MetricRow(f"Median distance to train ({SPACE_LABELS[space]})", m[f"nn_distance_median_{space}"],
                          m[f"nn_distance_median_{space}_baseline"], None, "lower than the baseline hints at copying"))
    if "fid" in m:
        rows.append(MetricRow("FID (Inception)", m["fid"], m["fid_baseline"], True, "to train; generated in val-sized subsets"))
    return rows


def galleries(pixels: np.ndarray, labels: np.ndarray, class_names: Sequence[str], per_class: int) -> dict[str, np.ndarray]:
    """The first `per_class` samples of every class that has any."""
    shown = {name: pixels[np.flatnonzero(labels == c)[:per_class]] for c, name in enumerate(class_names)}
    return {name: p for name, p in shown.items() if len(p)}


def write_evaluation_report(path: str | Path, *, verdict: GateVerdict, metrics: Mapping[str, Any],
                            per_class: Mapping[str, Mapping[str, Any]], memo: Memorisation, space: str,
                            generated: np.ndarray, requested: np.ndarray, train: np.ndarray,
                            class_names: Sequence[str], details: Mapping[str, Any], per_class_shown: int,
                            worst_pairs: int, quality_vs_steps: Mapping[str, Sequence[tuple[float, float]]] | None) -> None:
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
        distance_space=SPACE_LABELS[space],
    )
