"""Sampling with acceptance: the filter classifier's verdict on each generated image, and the tally per class.

A draw is accepted when the requested class is the filter's top class with a softmax probability of at
least `sample.filter.min_confidence`; a rejected draw is replaced by a fresh one of the same label
(`derive_seed(sample seed, "sample/attempt", attempt)`). The filter scores fixed row chunks
(`fixed_batch`), so a verdict depends on the image alone, never on the batch it was drawn in: resume,
Ray and `regenerate` stay exact. The tally's acceptance rate per class is the generator's own quality
as the filter sees it; the filter is never the evaluator (params refuse that).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from synthgen.config.sample import FilterConfig
from synthgen.errors import SynthgenError
from synthgen.evaluation.features import pixels_nchw, to_model_range
from synthgen.evaluation.trained import TrainedClassifier, load_classifier
from synthgen.generate.fixed_batch import in_fixed_batches


@dataclass(frozen=True)
class Verdicts:
    confidence: np.ndarray  # (N,) float: the filter's probability of each requested class
    top1: np.ndarray  # (N,) bool: the requested class is the filter's top class
    accepted: np.ndarray  # (N,) bool: top1 and confidence >= min_confidence


@lru_cache(maxsize=2)
def load_filter(folder: str, device: str) -> TrainedClassifier:
    """The filter classifier of `folder` (stage train_filter), loaded once per process."""
    return load_classifier(Path(folder), device)


@dataclass(frozen=True)
class SampleFilter:
    classifier: TrainedClassifier
    cfg: FilterConfig
    micro_batch: int  # rows per classifier call, as for the generator: fixes the numerics

    @property
    def sha256(self) -> str:
        return self.classifier.sha256

    def check_classes(self, class_names: list[str], folder: str | Path) -> None:
        if self.classifier.class_names != list(class_names):
            raise SynthgenError(f"the filter in {folder} knows classes {self.classifier.class_names[:4]}..., but the "
                                f"diffusion model draws {list(class_names)[:4]}...; retrain it (dvc repro train_filter)")

    @torch.no_grad()
    def judge(self, pixels: np.ndarray, labels: np.ndarray) -> Verdicts:
        """Verdicts on uint8 images (N, H, W, 3) drawn for `labels` (N,)."""
        model = self.classifier.model
        device = next(model.parameters()).device
        images = to_model_range(pixels_nchw(pixels)).to(device)
        probs = torch.softmax(in_fixed_batches(model, self.micro_batch)(images).float(), dim=1).cpu().numpy()
        rows = np.arange(len(labels))
        confidence = probs[rows, labels].astype(np.float64)
        top1 = probs.argmax(axis=1) == labels
        return Verdicts(confidence, top1, top1 & (confidence >= self.cfg.min_confidence))


@dataclass
class Tally:
    """Draws per class: made, accepted, and those whose top class was the requested one (before the threshold)."""

    attempts: list[int] = field(default_factory=list)
    accepted: list[int] = field(default_factory=list)
    top1: list[int] = field(default_factory=list)

    @classmethod
    def empty(cls, num_classes: int) -> Tally:
        return cls([0] * num_classes, [0] * num_classes, [0] * num_classes)

    def count(self, label: int, top1: bool, accepted: bool) -> None:
        """One draw of class `label`: whether the filter's top class was the requested one, and whether it accepted."""
        self.attempts[label] += 1
        self.top1[label] += top1
        self.accepted[label] += accepted

    def __add__(self, other: Tally) -> Tally:
        def plus(a: list[int], b: list[int]) -> list[int]:
            return [x + y for x, y in zip(a, b)]

        return Tally(plus(self.attempts, other.attempts), plus(self.accepted, other.accepted), plus(self.top1, other.top1))

    def as_json(self) -> dict[str, list[int]]:
        return {"attempts": self.attempts, "accepted": self.accepted, "top1": self.top1}

    @classmethod
    def from_json(cls, record: dict[str, list[int]]) -> Tally:
        return cls(list(record["attempts"]), list(record["accepted"]), list(record["top1"]))

    @classmethod
    def from_record(cls, record: dict[str, Any], class_names: list[str]) -> Tally:
        """The counts of a manifest `filter` record as `record` writes it (round(raw_accuracy x attempts) is top1, exactly)."""
        tally = cls.empty(len(class_names))
        for label, name in enumerate(class_names):
            if name in record["per_class"]:
                c = record["per_class"][name]
                tally.attempts[label], tally.accepted[label] = c["attempts"], c["accepted"]
                tally.top1[label] = round(c["raw_accuracy"] * c["attempts"])
        return tally

    def record(self, class_names: list[str], screen: SampleFilter) -> dict[str, Any]:
        """The manifest's `filter` record: settings, the filter's sha256, and acceptance overall and per class."""
        per_class = {
            name: {"attempts": a, "accepted": k, "acceptance_rate": k / a, "raw_accuracy": t / a}
            for name, a, k, t in zip(class_names, self.attempts, self.accepted, self.top1) if a
        }
        cfg = screen.cfg
        return {"classifier_sha256": screen.sha256, "min_confidence": cfg.min_confidence,
                "max_attempts": cfg.max_attempts, "min_acceptance": cfg.min_acceptance,
                "attempts": sum(self.attempts), "accepted": sum(self.accepted),
                "acceptance_rate": sum(self.accepted) / max(sum(self.attempts), 1), "per_class": per_class}


def check_acceptance(record: dict[str, Any]) -> None:
    """Fail when the class the filter accepted least often is below `min_acceptance`: the generator cannot draw it."""
    rates = {name: c["acceptance_rate"] for name, c in record["per_class"].items()}
    worst = min(rates, key=rates.get, default=None)
    if worst is not None and rates[worst] < record["min_acceptance"]:
        raise SynthgenError(
            f"sample.filter accepted {rates[worst]:.1%} of the draws of class {worst!r}, below sample.filter."
            f"min_acceptance = {record['min_acceptance']}: the generator rarely draws it; train it longer or "
            f"lower the floor")
