"""The train_classifier stage: a verified folder, exact resume, clear refusals, and the augmentation."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from synthgen.config.data import DataConfig
from synthgen.config.evaluate import AugmentConfig, EvaluateConfig
from synthgen.errors import SynthgenError
from synthgen.evaluation import load_classifier
from synthgen.evaluation.augment import augment, random_shift
from synthgen.evaluation.features import class_accuracy
from synthgen.shards import read_arrays
from synthgen.stages.prepare import prepare_dataset
from synthgen.stages.train_classifier import train_classifier
from synthgen.training.checkpoint import CheckpointError

CLASSES = ("red_circle", "green_square", "blue_triangle", "yellow_circle")
FAST_TRAIN = {"batch_size": 32, "lr": 3e-3, "warmup_steps": 2, "log_every": 5, "progress": False, "device": "cpu"}


def tiny_config(steps: int = 20) -> EvaluateConfig:
    return EvaluateConfig.model_validate({
        "classifier": {"widths": [8, 16], "blocks_per_stage": 1, "norm_groups": 4, "dropout": 0.0},
        "classifier_train": {**FAST_TRAIN, "steps": steps, "checkpoint_every": 10},
        "cas": {"samples": 64, "train": {**FAST_TRAIN, "steps": 6, "checkpoint_every": 6}, "runs": 2},
        "batch_size": 128,
    })


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """Four colour-separable shape classes at 16 px: ~190 train and ~50 val images."""
    folder = tmp_path_factory.mktemp("prepared")
    prepare_dataset(DataConfig(resolution=16, num_images=720, val_fraction=0.2, classes=CLASSES), folder)
    train_px, train_y, _ = read_arrays(folder / "train")
    val_px, val_y, _ = read_arrays(folder / "val")
    return train_px, train_y, val_px, val_y, list(CLASSES)


def test_writes_a_folder_that_rebuilds_the_measured_classifier(real, tmp_path):
    summary = train_classifier(tiny_config(), *real, tmp_path)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["cas_reference", "checkpoints", "config.json", "metrics.csv", "metrics.json",
                     "model.manifest.json", "model.safetensors"]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics["val_accuracy_per_class"]) == set(CLASSES)
    assert metrics["cas_reference_train_count"] == 64 and metrics["cas_reference_runs"] == 2
    assert 0 <= metrics["cas_reference_accuracy"] <= 1 and metrics["cas_reference_accuracy_std"] >= 0
    assert (tmp_path / "metrics.csv").read_text().splitlines()[0].startswith("step,")
    assert sorted(p.name for p in (tmp_path / "cas_reference").iterdir()) == ["run-0", "run-1"]
    assert all((tmp_path / "cas_reference" / f"run-{k}" / "metrics.csv").is_file() for k in (0, 1))
    trained = load_classifier(tmp_path)
    assert trained.sha256 == summary["model_sha256"] and trained.class_names == list(CLASSES)
    assert trained.image_size == (16, 16) and not trained.model.training
    _, _, val_px, val_y, _ = real
    assert class_accuracy(trained.model, val_px, val_y, 64).overall == metrics["val_accuracy"] == summary["val_accuracy"]


def test_a_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(real, tmp_path):
    train_classifier(tiny_config(steps=10), *real, tmp_path / "resumed")
    resumed = train_classifier(tiny_config(steps=20), *real, tmp_path / "resumed")
    straight = train_classifier(tiny_config(steps=20), *real, tmp_path / "straight")
    assert resumed["resumed_from"] == 10 and resumed["steps"] == 20 and straight["resumed_from"] == 0
    assert resumed["model_sha256"] == straight["model_sha256"]


def test_the_evaluator_and_cas_reference_trained_side_by_side_match_one_by_one(real, tmp_path):
    """Two spawned processes (one thread each, as inline) train the two classifiers: the same weights and figures."""
    def config(workers: int) -> EvaluateConfig:
        one_thread = {"cpu_threads": 1}
        cfg = tiny_config()
        return cfg.model_copy(update={
            "classifier_workers": workers,
            "classifier_train": cfg.classifier_train.model_copy(update=one_thread),
            "cas": cfg.cas.model_copy(update={"train": cfg.cas.train.model_copy(update=one_thread)})})

    serial = train_classifier(config(1), *real, tmp_path / "serial")
    parallel = train_classifier(config(2), *real, tmp_path / "parallel")
    figures = ("model_sha256", "val_accuracy", "cas_reference_accuracy", "cas_reference_accuracy_std", "steps")
    assert [parallel[k] for k in figures] == [serial[k] for k in figures]


def test_modified_weights_are_refused(real, tmp_path):
    train_classifier(tiny_config(steps=2), *real, tmp_path)
    weights = tmp_path / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="does not match its manifest"):
        load_classifier(tmp_path)
    with pytest.raises(CheckpointError, match="run the stage that trains it first"):
        load_classifier(tmp_path / "nothing-here")


def test_unusable_inputs_get_one_clear_line(real, tmp_path):
    train_px, train_y, val_px, val_y, names = real
    with pytest.raises(SynthgenError, match="val split is empty"):
        train_classifier(tiny_config(), train_px, train_y, val_px[:0], val_y[:0], names, tmp_path)
    with pytest.raises(SynthgenError, match="train: labels span 1..4, but there are 4 classes"):
        train_classifier(tiny_config(), train_px, np.where(train_y == 0, 4, train_y), val_px, val_y, names, tmp_path)
    with pytest.raises(SynthgenError, match=r"uint8 array \(N, H, W, 3\)"):
        train_classifier(tiny_config(), train_px.astype(np.float32), train_y, val_px, val_y, names, tmp_path)


def test_partial_schedules_keep_the_stage_defaults():
    cfg = EvaluateConfig.model_validate({"classifier_train": {"steps": 7}, "cas": {"train": {"progress": False}}})
    assert cfg.classifier_train.steps == 7 and cfg.classifier_train.lr == EvaluateConfig().classifier_train.lr
    assert cfg.cas.train.steps == EvaluateConfig().cas.train.steps and not cfg.cas.train.progress


def test_shift_moves_whole_images_and_is_driven_by_the_generator():
    images = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).reshape(2, 3, 6, 6)
    first = random_shift(images, 2, torch.Generator().manual_seed(0))
    assert torch.equal(first, random_shift(images, 2, torch.Generator().manual_seed(0)))
    assert first.shape == images.shape and not torch.equal(first, images)
    # the centre 2x2 of each image survives any shift of up to 2 pixels, moved as one block
    for shifted, original in zip(first, images):
        hits = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                if torch.equal(shifted[:, 2 + dy:4 + dy, 2 + dx:4 + dx], original[:, 2:4, 2:4])]
        assert len(hits) == 1
    assert torch.equal(random_shift(images, 0, torch.Generator()), images)


def test_flips_mirror_some_images_and_leave_the_rest():
    images = torch.randn(64, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    out = augment(images, AugmentConfig(shift=0, hflip=True), torch.Generator().manual_seed(2))
    flipped = [torch.equal(o, i.flip(-1)) for o, i in zip(out, images)]
    kept = [torch.equal(o, i) for o, i in zip(out, images)]
    assert all(f or k for f, k in zip(flipped, kept)) and 10 < sum(flipped) < 54


# ---- the sampling filter: the same training, another network ---------------------------------


def tiny_params(**filter_overrides):
    from synthgen.config.params import Params

    evaluate = tiny_config().model_dump(mode="json")
    filter_section = {"classifier": {"widths": [16], "blocks_per_stage": 1, "norm_groups": 4, "dropout": 0.0},
                      "train": {**FAST_TRAIN, "steps": 20, "checkpoint_every": 10, "seed": 1}, **filter_overrides}
    return Params.model_validate({"evaluate": evaluate, "sample": {"filter": filter_section}})


def test_train_filter_writes_a_classifier_folder_that_is_not_the_evaluator(real, tmp_path):
    from synthgen.stages.train_filter import train_filter

    params = tiny_params()
    evaluator = train_classifier(params.evaluate, *real, tmp_path / "classifier")
    summary = train_filter(params, *real, tmp_path / "filter")
    screen = load_classifier(tmp_path / "filter")
    assert screen.sha256 == summary["model_sha256"] != evaluator["model_sha256"]
    assert screen.trained_with["filter"]["train"]["seed"] == 1 and screen.model.feature_dim == 16
    assert set(summary["val_accuracy_per_class"]) == set(CLASSES) and summary["val_accuracy"] > 0.5


def test_params_refuse_a_filter_that_would_be_a_copy_of_the_evaluator():
    from pydantic import ValidationError

    judge = tiny_config()
    with pytest.raises(ValidationError, match="the judge would be the filter"):
        tiny_params(classifier=judge.classifier.model_dump(), train={**FAST_TRAIN, "seed": judge.classifier_train.seed})
    tiny_params(classifier=judge.classifier.model_dump(), train={**FAST_TRAIN, "seed": 7})  # another seed will do
    tiny_params(classifier=judge.classifier.model_dump(), train={**FAST_TRAIN, "seed": 0}, enabled=False)
