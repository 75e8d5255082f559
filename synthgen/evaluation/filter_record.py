"""The sample filter's record in a synthetic dataset's manifest, as the evaluate stage reads it.

With `sample.filter`, the sample stage scores every generated image with a filter classifier and
replaces the ones it rejects by fresh samples of the same label. The manifest's `"filter"` record
(null without a filter) counts the attempts and acceptances per class: the acceptance rate is the
generator's raw quality as the filter sees it. The evaluator judges the published samples and must
be another classifier, or it would grade its own selection.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from synthgen.errors import SynthgenError
from synthgen.metrics.specs import (
    FILTER_ACCEPTANCE, FILTER_CLASS_ACCEPTANCE, FILTER_CLASS_RAW_ACCURACY, FILTER_RAW_ACCURACY,
    FILTER_WORST_CLASS_ACCEPTANCE,
)

FILTER = "filter"  # the manifest key of the record


@dataclass(frozen=True)
class ClassFiltering:
    """How the filter treated the samples requested of one class."""

    attempts: int  # images generated for the class, accepted or not
    accepted: int
    raw_accuracy: float  # share of attempts the filter assigned to the class, before the confidence threshold

    @property
    def acceptance_rate(self) -> float | None:
        return self.accepted / self.attempts if self.attempts else None


@dataclass(frozen=True)
class FilterRecord:
    """The manifest's `"filter"` record: the filter's identity, its settings and the per-class counts."""

    classifier_sha256: str  # sha256 of the filter classifier's weights
    min_confidence: float  # an image is accepted when the filter gives its class at least this probability
    max_attempts: int  # images generated per sample at most
    per_class: dict[str, ClassFiltering]

    @property
    def attempts(self) -> int:
        return sum(c.attempts for c in self.per_class.values())

    @property
    def acceptance_rate(self) -> float | None:
        accepted = sum(c.accepted for c in self.per_class.values())
        return accepted / self.attempts if self.attempts else None

    @property
    def raw_accuracy(self) -> float | None:
        """The per-class raw accuracies weighted by each class's attempts."""
        if not self.attempts:
            return None
        return sum(c.raw_accuracy * c.attempts for c in self.per_class.values()) / self.attempts


def read_filter_record(manifest: Mapping[str, Any]) -> FilterRecord | None:
    """The manifest's filter record; None when sampling ran without a filter (or before filters existed)."""
    record = manifest.get(FILTER)
    if record is None:
        return None
    try:
        per_class = {name: ClassFiltering(int(c["attempts"]), int(c["accepted"]), float(c["raw_accuracy"]))
                     for name, c in record["per_class"].items()}
        return FilterRecord(str(record["classifier_sha256"]), float(record["min_confidence"]),
                            int(record["max_attempts"]), per_class)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise SynthgenError(f"the manifest's {FILTER!r} record is malformed ({type(e).__name__}: {e}); "
                            "sample the dataset again") from None


def by_class(record: FilterRecord, class_names: Sequence[str], value: str) -> dict[str, float | None]:
    """{class name: the attribute `value` of its counts} in label order; null for a class the record lacks."""
    return {name: getattr(record.per_class[name], value) if name in record.per_class else None
            for name in class_names}


def filter_metrics(record: FilterRecord | None, class_names: Sequence[str]) -> dict[str, Any]:
    """The metrics.json keys of the filter record (none without a filter): its acceptance rate overall,
    per class and for the worst class, and its raw accuracy overall and per class."""
    if record is None:
        return {}
    acceptance = by_class(record, class_names, "acceptance_rate")
    measured = [v for v in acceptance.values() if v is not None]
    return {FILTER_ACCEPTANCE.key: record.acceptance_rate,
            FILTER_WORST_CLASS_ACCEPTANCE.key: min(measured) if measured else None,
            FILTER_CLASS_ACCEPTANCE.key: acceptance,
            FILTER_RAW_ACCURACY.key: record.raw_accuracy,
            FILTER_CLASS_RAW_ACCURACY.key: by_class(record, class_names, "raw_accuracy")}
