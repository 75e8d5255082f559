"""The quality gate on synthetic feature sets: good data passes, noise, wrong labels and copies do not.

The gate's inputs are computed by the functions the evaluate stage calls (`synthgen.evaluation.scores`).
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from synthgen.config.evaluate import EvaluateConfig, GateConfig
from synthgen.evaluation.features import matched_subsets
from synthgen.evaluation.scores import (
    conditional_with_baseline, fd_with_baseline, gate_space_aliases, memorisation_summary,
)
from synthgen.metrics import evaluate_gate, memorisation
from synthgen.metrics.specs import GATED

NUM_CLASSES, DIM = 4, 16
GATE = GateConfig(min_conditional_accuracy=0.8, max_fd_ratio=3.0, max_near_duplicate_fraction=0.05, min_cas_ratio=None,
                  min_class_accuracy=None)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


CLASS_MEANS = 6 * torch.eye(NUM_CLASSES, DIM)


def class_features(per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Features of a 4-class 'dataset': unit Gaussians around well separated class means."""
    labels = torch.arange(NUM_CLASSES).repeat_interleave(per_class)
    return CLASS_MEANS[labels] + torch.randn(len(labels), DIM, generator=gen(seed)), labels


def nearest_mean_classifier(features: torch.Tensor) -> torch.Tensor:
    return torch.cdist(features, CLASS_MEANS).argmin(dim=1)


TRAIN, _ = class_features(100, seed=0)
VAL, VAL_LABELS = class_features(50, seed=1)


def gate_inputs(generated: torch.Tensor, requested: torch.Tensor) -> dict[str, float]:
    """The metrics the gate reads, as the evaluate stage computes them (all generated samples measured)."""
    measured = np.arange(len(generated))
    conditional, _ = conditional_with_baseline(nearest_mean_classifier(generated), requested.numpy(),
                                               nearest_mean_classifier(VAL), VAL_LABELS.numpy(),
                                               [f"class{c}" for c in range(NUM_CLASSES)])
    subsets = matched_subsets(len(generated), len(VAL), seed=0)
    memo = memorisation(generated, TRAIN, VAL, quantile=0.01)
    metrics = {**conditional, **fd_with_baseline(TRAIN, VAL, generated, subsets),
               **memorisation_summary(memo, measured, "features")}
    return {**metrics, **gate_space_aliases(metrics, "features")}


def verdict_for(generated: torch.Tensor, requested: torch.Tensor):
    metrics = gate_inputs(generated, requested)
    return evaluate_gate(metrics, GATE), metrics


def failed_metrics(verdict) -> set[str]:
    return {c.metric for c in verdict.checks if not c.passed}


def test_good_generated_features_are_published():
    generated, requested = class_features(50, seed=2)
    verdict, metrics = verdict_for(generated, requested)
    assert verdict.status == "published" and verdict.reasons == [], metrics
    assert metrics["fd_ratio"] < 2


def test_noise_is_rejected_on_accuracy_and_fd():
    noise = 5 * torch.randn(200, DIM, generator=gen(3))
    requested = torch.randint(0, NUM_CLASSES, (200,), generator=gen(4))
    verdict, metrics = verdict_for(noise, requested)
    assert verdict.status == "rejected"
    assert {"conditional_accuracy", "fd_ratio"} <= failed_metrics(verdict), metrics
    assert any(r.startswith("fd_ratio") for r in verdict.reasons)


def test_shuffled_labels_are_rejected_on_accuracy_only():
    generated, requested = class_features(50, seed=5)
    shuffled = requested[torch.randperm(len(requested), generator=gen(6))]
    verdict, metrics = verdict_for(generated, shuffled)
    assert verdict.status == "rejected"
    assert failed_metrics(verdict) == {"conditional_accuracy"}, metrics


def test_copies_of_training_data_are_rejected_as_near_duplicates():
    copies, requested = TRAIN[::2], torch.arange(NUM_CLASSES).repeat_interleave(50)
    verdict, metrics = verdict_for(copies, requested)
    assert verdict.status == "rejected"
    assert failed_metrics(verdict) == {"near_duplicate_fraction"}, metrics
    assert metrics["near_duplicate_fraction"] == 1.0


GOOD = {"conditional_accuracy": 0.9, "fd_ratio": 1.2, "near_duplicate_fraction": 0.0}


def test_missing_or_non_finite_metrics_fail_closed():
    for broken in ({k: v for k, v in GOOD.items() if k != "fd_ratio"}, {**GOOD, "fd_ratio": math.nan}):
        verdict = evaluate_gate(broken, GATE)
        assert verdict.status == "rejected"
        assert verdict.reasons == [r for r in verdict.reasons if r.startswith("fd_ratio")] and len(verdict.reasons) == 1
        assert "must be measured" in verdict.reasons[0]


def test_limits_are_inclusive_and_cas_is_checked_only_when_configured():
    at_limits = {"conditional_accuracy": 0.8, "fd_ratio": 3.0, "near_duplicate_fraction": 0.05}
    assert evaluate_gate(at_limits, GATE).published
    with_cas = GATE.model_copy(update={"min_cas_ratio": 0.7})
    assert "cas_ratio" in failed_metrics(evaluate_gate(GOOD, with_cas))  # configured but missing
    assert evaluate_gate({**GOOD, "cas_ratio": 0.75}, with_cas).published
    assert not evaluate_gate({**GOOD, "cas_ratio": 0.5}, with_cas).published


def test_verdict_serialises_to_json():
    data = json.loads(json.dumps(evaluate_gate({**GOOD, "fd_ratio": 9.0}, GATE).to_dict()))
    assert data["status"] == "rejected" and len(data["checks"]) == 3
    assert data["reasons"] == ["fd_ratio = 9 fails: must be <= 3"]


def test_gate_config_rejects_bad_values_naming_the_key():
    with pytest.raises(ValidationError, match="min_conditional_accuracy"):
        GateConfig(min_conditional_accuracy=1.5)
    with pytest.raises(ValidationError, match="max_fd_ration"):
        GateConfig(max_fd_ration=2.0)
    with pytest.raises(ValidationError, match="memorisation_space"):
        EvaluateConfig(memorisation_space="latents")
    cfg = EvaluateConfig.model_validate({"gate": {"min_cas_ratio": 0.8}, "classifier": {"widths": [16, 32]}})
    assert cfg.gate.min_cas_ratio == 0.8 and cfg.classifier.widths == (16, 32) and cfg.pr_k == 3


def test_every_gated_metric_has_its_threshold_and_every_threshold_a_metric():
    assert {spec.threshold for spec in GATED} == set(GateConfig.model_fields)
    for spec in GATED:
        assert spec.threshold.startswith(spec.bound), f"{spec.threshold} must be a {spec.bound}imum"


# ---- the per-class gate (issue 14 part 3) --------------------------------------------------------

WITH_CLASSES = GATE.model_copy(update={"min_class_accuracy": 0.85})


def test_one_unfaithful_class_is_rejected_and_named():
    generated, requested = class_features(50, seed=7)
    requested[torch.nonzero(requested == 3).flatten()[:30]] = 2  # 30 requests for class2 came out as class3
    metrics = gate_inputs(generated, requested)
    assert metrics["conditional_accuracy"] > GATE.min_conditional_accuracy  # the overall gate alone publishes it
    assert evaluate_gate(metrics, GATE).published
    verdict = evaluate_gate(metrics, WITH_CLASSES)
    class2 = metrics["conditional_accuracy_per_class"]["class2"]
    assert verdict.reasons == [f"class class2: conditional_accuracy_per_class = {class2:.4g} fails: must be >= 0.85"]
    per_class = [c for c in verdict.checks if c.metric == "conditional_accuracy_per_class"]
    assert [c.subject for c in per_class] == [f"class{c}" for c in range(NUM_CLASSES)]
    assert metrics["conditional_accuracy_worst_class"] == class2


def test_per_class_checks_skip_classes_not_requested_and_fail_closed():
    per_class = {"red_square": 0.42, "blue_circle": 0.9, "green_triangle": None}
    verdict = evaluate_gate({**GOOD, "conditional_accuracy_per_class": per_class}, WITH_CLASSES)
    assert verdict.reasons == ["class red_square: conditional_accuracy_per_class = 0.42 fails: must be >= 0.85"]
    assert [c.subject for c in verdict.checks if c.subject] == ["red_square", "blue_circle"]
    for broken in ({}, {"conditional_accuracy_per_class": {}}, {"conditional_accuracy_per_class": {"a": math.nan}}):
        verdict = evaluate_gate({**GOOD, **broken}, WITH_CLASSES)
        assert not verdict.published and "must be measured" in verdict.reasons[0]
    assert evaluate_gate({**GOOD, "conditional_accuracy_per_class": {"a": 0.85}}, WITH_CLASSES).published  # inclusive
    with pytest.raises(ValidationError, match="min_class_accuracy"):
        GateConfig(min_class_accuracy=1.2)


def test_the_project_defaults_publish_the_screened_generator_and_reject_the_unscreened_one():
    """Both measured on `make run` (issue 14): with the sample filter, accuracy 0.92 (red squares 0.69), FD ratio
    1.31, CAS ratio 0.85; the same generator without it, 0.87 with red squares at 0.39 and FD ratio 2.70."""
    from pathlib import Path

    from synthgen.config.loader import load_params

    gate = load_params(Path(__file__).resolve().parents[1] / "params.yaml").evaluate.gate
    screened = {"conditional_accuracy": 0.922, "fd_ratio": 1.31, "near_duplicate_fraction": 0.004, "cas_ratio": 0.85,
                "conditional_accuracy_per_class": {"red_square": 0.69, "blue_circle": 0.98}}
    unscreened = {"conditional_accuracy": 0.868, "fd_ratio": 2.70, "near_duplicate_fraction": 0.007, "cas_ratio": 0.84,
                  "conditional_accuracy_per_class": {"red_square": 0.39, "blue_circle": 0.99}}
    assert evaluate_gate(screened, gate).published
    assert failed_metrics(evaluate_gate(unscreened, gate)) == {"conditional_accuracy_per_class", "fd_ratio"}
