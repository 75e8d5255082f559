"""The sample filter's manifest record as evaluation reads it: parsed once, turned into metrics.json keys."""
import pytest

from synthgen.errors import SynthgenError
from synthgen.evaluation.filter_record import filter_metrics, read_filter_record

CLASSES = ["circle", "square", "triangle"]


def record(**changes) -> dict:
    """A filter record as the sample stage writes it: two classes requested, the third not."""
    base = {"classifier_sha256": "ab" * 32, "min_confidence": 0.5, "max_attempts": 16, "min_acceptance": 0.5,
            "attempts": 30, "accepted": 20, "acceptance_rate": 0.667,
            "per_class": {"circle": {"attempts": 10, "accepted": 9, "acceptance_rate": 0.9, "raw_accuracy": 0.95},
                          "square": {"attempts": 20, "accepted": 11, "acceptance_rate": 0.55, "raw_accuracy": 0.6}}}
    return {**base, **changes}


def test_no_record_means_no_filter_and_no_keys():
    assert read_filter_record({}) is None and read_filter_record({"filter": None}) is None
    assert filter_metrics(None, CLASSES) == {}


def test_acceptance_and_raw_accuracy_overall_per_class_and_worst():
    parsed = read_filter_record({"filter": record()})
    assert parsed.classifier_sha256 == "ab" * 32 and parsed.min_confidence == 0.5 and parsed.max_attempts == 16
    metrics = filter_metrics(parsed, CLASSES)
    assert metrics["filter_acceptance_rate"] == pytest.approx(20 / 30)
    assert metrics["filter_acceptance_rate_per_class"] == pytest.approx({"circle": 0.9, "square": 0.55, "triangle": None})
    assert list(metrics["filter_acceptance_rate_per_class"]) == CLASSES  # label order, as the evaluator's table
    assert metrics["filter_acceptance_rate_worst_class"] == pytest.approx(0.55)
    assert metrics["filter_raw_accuracy"] == pytest.approx((10 * 0.95 + 20 * 0.6) / 30)  # weighted by attempts
    assert metrics["filter_raw_accuracy_per_class"] == {"circle": 0.95, "square": 0.6, "triangle": None}


def test_a_class_with_no_attempts_has_no_rate():
    parsed = read_filter_record({"filter": record(per_class={"circle": {"attempts": 0, "accepted": 0, "raw_accuracy": 0.0}})})
    metrics = filter_metrics(parsed, CLASSES)
    assert metrics["filter_acceptance_rate"] is None and metrics["filter_acceptance_rate_worst_class"] is None
    assert metrics["filter_raw_accuracy"] is None


@pytest.mark.parametrize("broken", [record(per_class={"circle": {"attempts": 3}}), record(classifier_sha256=None) | {
    "min_confidence": "high"}, {"per_class": {}}, "yes"])
def test_a_malformed_record_is_one_line(broken):
    with pytest.raises(SynthgenError, match=r"manifest's 'filter' record is malformed .*; sample the dataset again") as err:
        read_filter_record({"filter": broken})
    assert "\n" not in str(err.value)


def test_a_record_gives_back_the_tally_it_was_made_from():
    from types import SimpleNamespace

    from synthgen.config.sample import FilterConfig
    from synthgen.generate.filter import Tally

    tally = Tally([7, 0, 999_983], [3, 0, 500_001], [5, 0, 777_777])
    screen = SimpleNamespace(sha256="ab" * 32, cfg=FilterConfig())
    assert Tally.from_record(tally.record(CLASSES, screen), CLASSES) == tally
