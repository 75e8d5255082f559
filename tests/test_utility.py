"""Augmentation utility (issue 14 part 4): n real images alone against n real plus the synthetic set.

The toy data is three classes told apart by colour, at 8 px: with 3 real images (5% of 60) a
classifier cannot know every class, so correctly labelled synthetic images help; the same images
with shuffled labels do not.
"""
from __future__ import annotations

import numpy as np
import pytest

from synthgen.config.evaluate import EvaluateConfig
from synthgen.config.loader import ConfigError, load_params
from synthgen.evaluation.inputs import LabelledImages, RealData
from synthgen.metrics.utility import UtilityPoint, measure_utility, real_count, utility_metrics
from synthgen.stages.evaluate import classifier_runs

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE, CLASSES = 8, ["red", "green", "blue"]
TRAIN = {"batch_size": 16, "lr": 3e-3, "warmup_steps": 2, "log_every": 10, "progress": False, "device": "cpu",
         "cpu_threads": 1}
CFG = EvaluateConfig.model_validate({
    "classifier": {"widths": [8, 16], "blocks_per_stage": 1, "norm_groups": 4, "dropout": 0.0, "stem_stride": 1},
    "augment": {"shift": 0},
    "cas": {"samples": 60, "train": {**TRAIN, "steps": 10, "checkpoint_every": 10}, "runs": 2},
    "utility": {"train": {**TRAIN, "steps": 30, "checkpoint_every": 30}},
    "classifier_workers": 1,
})


def colour_images(count: int, seed: int) -> LabelledImages:
    """Noisy images of one dominant colour each: class c is mostly channel c."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(count) % len(CLASSES))
    base = 40 + 160 * np.eye(3)[labels][:, None, None, :]
    pixels = np.clip(base + rng.normal(0, 25, (count, SIZE, SIZE, 3)), 0, 255).astype(np.uint8)
    return LabelledImages(pixels, labels.astype(np.int64), [f"{seed}-{i}" for i in range(count)])


REAL = RealData(colour_images(60, seed=0), colour_images(60, seed=1), CLASSES)
INFORMATIVE = colour_images(120, seed=2)
SHUFFLED = LabelledImages(INFORMATIVE.pixels, np.random.default_rng(3).permutation(INFORMATIVE.labels),
                          INFORMATIVE.keys)


def augmentation_utility(cfg: EvaluateConfig, real: RealData, synthetic: LabelledImages) -> list[UtilityPoint]:
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as cas_dir:
        return classifier_runs(cfg, real, synthetic, Path(cas_dir))[2]


@pytest.fixture(scope="module")
def informative() -> list[UtilityPoint]:
    return augmentation_utility(CFG, REAL, INFORMATIVE)


def test_informative_synthetic_data_helps_where_real_data_is_scarce(informative):
    assert [(p.fraction, p.real_count) for p in informative] == [(0.05, 3), (1.0, 60)]  # the default fractions
    scarce = informative[0]
    assert scarce.gain > 0.2, informative
    assert all(p.augmented_accuracy > 0.9 for p in informative)


def test_shuffled_labels_help_much_less_or_hurt(informative):
    shuffled = augmentation_utility(CFG, REAL, SHUFFLED)
    assert [p.real_accuracy for p in shuffled] == [p.real_accuracy for p in informative]  # same real runs
    assert shuffled[0].gain < informative[0].gain - 0.2, (shuffled, informative)
    assert all(s.gain <= i.gain for s, i in zip(shuffled, informative))  # at 100% the 60 real images still win


def test_the_figures_are_deterministic_for_a_seed_and_n_nests(informative):
    assert augmentation_utility(CFG, REAL, INFORMATIVE) == informative
    three = CFG.model_copy(update={"utility": CFG.utility.model_copy(update={"fractions": (0.05, 0.2, 1.0)})})
    points = augmentation_utility(three, REAL, INFORMATIVE)
    assert [p.real_count for p in points] == [3, 12, 60] and [points[0], points[2]] == informative


def test_runs_side_by_side_in_processes_give_the_figures_of_runs_one_by_one(informative, tmp_path):
    """Two spawned workers (each with the runs' one thread) train the CAS and utility classifiers: same numbers."""
    serial = classifier_runs(CFG, REAL, INFORMATIVE, tmp_path / "serial")
    parallel = classifier_runs(CFG.model_copy(update={"classifier_workers": 2}), REAL, INFORMATIVE, tmp_path / "two")
    assert parallel == serial and serial[2] == informative
    for run in ("run-0", "run-1"):
        assert losses(tmp_path / "two" / run) == losses(tmp_path / "serial" / run)


def test_each_cas_run_trains_with_its_own_seed_on_the_same_images(tmp_path):
    """Two CAS runs: seeds train.seed and train.seed + 1, so two loss curves; the first is the single run's."""
    accuracies, count, _ = classifier_runs(CFG, REAL, INFORMATIVE, tmp_path / "two")
    one = CFG.model_copy(update={"cas": CFG.cas.model_copy(update={"runs": 1})})
    single, single_count, _ = classifier_runs(one, REAL, INFORMATIVE, tmp_path / "one")
    assert len(accuracies) == 2 and count == single_count == 60 and single == accuracies[:1]
    assert losses(tmp_path / "two" / "run-0") == losses(tmp_path / "one" / "run-0")
    assert losses(tmp_path / "two" / "run-1") != losses(tmp_path / "two" / "run-0")
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == ["run-0", "run-1"]


def losses(run_dir) -> list[str]:
    """A CAS run's loss column (metrics.csv also holds images/s, a timing)."""
    import polars as pl

    return pl.read_csv(run_dir / "metrics.csv")["loss"].to_list()


def test_n_is_a_rounded_share_of_train_and_at_least_one():
    assert [real_count(f, 2400) for f in (0.05, 0.2, 1.0)] == [120, 480, 2400]
    assert real_count(0.01, 30) == 1


def test_measure_utility_runs_both_arms_per_fraction_and_names_the_keys():
    calls = []

    def accuracy(n: int, with_synthetic: bool) -> float:
        calls.append((n, with_synthetic))
        return n / 100 + (0.25 if with_synthetic else 0.0)

    points = measure_utility((0.125, 1.0), 40, accuracy)
    assert calls == [(5, False), (5, True), (40, False), (40, True)]
    metrics = utility_metrics(points, synthetic_count=7, steps=11)
    assert metrics["utility_gain_12_5pct"] == pytest.approx(0.25) and metrics["utility_real_count_100pct"] == 40
    assert metrics["utility_real_accuracy_12_5pct"] == pytest.approx(0.05)
    assert metrics["utility_augmented_accuracy_100pct"] == pytest.approx(0.65)
    assert (metrics["utility_smallest_n"], metrics["utility_largest_n"]) == (5, 40)
    assert metrics["utility_gain_smallest_n"] == metrics["utility_gain_12_5pct"]
    assert (metrics["utility_synthetic_count"], metrics["utility_steps"]) == (7, 11)


@pytest.mark.parametrize("text,fragment", [
    ("evaluate:\n  utility:\n    fractions: [0.2, 0.05]\n", "must be distinct and ascending; got [0.2, 0.05]"),
    ("evaluate:\n  utility:\n    fractions: [0.2, 0.2]\n", "must be distinct and ascending"),
    ("evaluate:\n  utility:\n    fractions: [0.0]\n", "evaluate.utility.fractions.0 = 0.0: Input should be greater than 0"),
    ("evaluate:\n  utility:\n    fractions: [1.5]\n", "evaluate.utility.fractions.0 = 1.5: Input should be less than or equal to 1"),
    ("evaluate:\n  utility:\n    fractions: []\n", "evaluate.utility.fractions = []"),
    ("evaluate:\n  utility:\n    train: {steps: 0}\n", "evaluate.utility.train.steps = 0"),
    ("evaluate:\n  utility:\n    enabled: maybe\n", "evaluate.utility.enabled = 'maybe'"),
])
def test_bad_utility_params_are_one_line(tmp_path, text, fragment):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_params(path)
    assert fragment in str(err.value) and "\n" not in str(err.value)
