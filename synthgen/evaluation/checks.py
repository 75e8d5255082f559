"""Refusals before the evaluate stage does any work: a classifier, real data and a synthetic set that do not fit,
and an evaluator that is the filter which selected the samples."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from synthgen.config.evaluate import EvaluateConfig
from synthgen.errors import SynthgenError
from synthgen.evaluation.filter_record import FilterRecord
from synthgen.evaluation.inputs import LabelledImages, RealData
from synthgen.evaluation.trained import TrainedClassifier

MUST_MATCH = ("classifier", "augment", "cas")  # sections the CAS reference was trained with
IGNORED_KEYS = {"progress", "cpu_threads"}  # settings that do not change what is trained


def differences(stored: Any, current: Any, prefix: str) -> list[str]:
    """Dotted keys whose value differs between two JSON trees, as 'key=old (params say new)'.

    Keys the stored tree lacks (params added after it was written) are not compared.
    """
    if isinstance(stored, dict) and isinstance(current, dict):
        return [d for k in current if k not in IGNORED_KEYS and k in stored
                for d in differences(stored[k], current[k], f"{prefix}.{k}")]
    return [] if stored == current else [f"{prefix}={stored!r} (params say {current!r})"]


def check_classifier_fits(trained: TrainedClassifier, cfg: EvaluateConfig, real: RealData, classifier_dir: Path) -> None:
    """The classifier folder must come from these classes, this image size and these CAS settings."""
    current = cfg.model_dump(mode="json")
    diffs = [d for s in MUST_MATCH for d in differences(trained.trained_with.get(s), current[s], f"evaluate.{s}")]
    if diffs:
        raise SynthgenError(f"{classifier_dir} was trained with {diffs[0]}; re-run train_classifier with these params")
    if trained.class_names != real.class_names:
        raise SynthgenError(f"{classifier_dir} knows classes {trained.class_names}, the prepared data has "
                            f"{real.class_names}; re-run train_classifier")
    if tuple(real.train.pixels.shape[1:3]) != tuple(trained.image_size):
        raise SynthgenError(f"{classifier_dir} was trained on {tuple(trained.image_size)} images, the prepared data "
                            f"is {real.train.pixels.shape[1:3]}; re-run train_classifier")


def check_synthetic_fits(synthetic: LabelledImages, real: RealData, cfg: EvaluateConfig) -> None:
    """Synthetic images must have the real images' size, and be enough for one CAS batch."""
    if synthetic.pixels.shape[1:] != real.train.pixels.shape[1:]:
        raise SynthgenError(f"synthetic images are {synthetic.pixels.shape[1:3]}, real ones {real.train.pixels.shape[1:3]}; "
                            "generate at the prepared resolution")
    if min(len(synthetic), cfg.cas.samples) < cfg.cas.train.batch_size:
        raise SynthgenError(f"evaluate.cas.train.batch_size={cfg.cas.train.batch_size} is larger than the "
                            f"{min(len(synthetic), cfg.cas.samples)} synthetic images CAS trains on; lower it")


def check_evaluator_is_not_filter(trained: TrainedClassifier, record: FilterRecord | None, classifier_dir: Path) -> None:
    """The evaluator must not be the classifier that selected the samples it judges (the manifest's filter)."""
    if record is not None and record.classifier_sha256 == trained.sha256:
        raise SynthgenError(f"the evaluator {classifier_dir} (weights sha256 {trained.sha256[:12]}) is the filter that "
                            "selected these samples; train the evaluator with another seed or architecture")
