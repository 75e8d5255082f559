"""Stage sweep_samplers on tiny models: one scored row per sampler and step count, and a CSV evaluate can plot."""
from __future__ import annotations

import json
import math

import pytest
import torch

from synthgen.config.data import DataConfig
from synthgen.config.diffusion import SamplerConfig
from synthgen.config.evaluate import EvaluateConfig
from synthgen.evaluation.sweep import read_curves
from synthgen.shards import read_arrays
from synthgen.stages.prepare import prepare_dataset
from synthgen.stages.sweep_samplers import run_sweep
from synthgen.stages.train_classifier import train_classifier
from tests.tiny_models import write_tiny_models

CLASSES = ("red_circle", "green_square", "blue_triangle")  # three classes, as the tiny models have
TRAIN = {"steps": 3, "batch_size": 8, "checkpoint_every": 3, "log_every": 1, "progress": False, "device": "cpu"}
CFG = EvaluateConfig.model_validate({
    "classifier": {"widths": [8, 16], "blocks_per_stage": 1, "norm_groups": 4},
    "classifier_train": TRAIN, "cas": {"samples": 16, "train": TRAIN},
    "sweep": {"samplers": ["ddim", "heun", "pc"], "steps": [2, 4], "per_class": 2},
})


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    prepare_dataset(DataConfig(resolution=16, num_images=60, val_fraction=0.25, classes=CLASSES), root / "prepared")
    train_px, train_y, _ = read_arrays(root / "prepared" / "train")
    val_px, val_y, _ = read_arrays(root / "prepared" / "val")
    with torch.random.fork_rng():
        train_classifier(CFG, train_px, train_y, val_px, val_y, list(CLASSES), root / "classifier")
    diffusion, autoencoder = write_tiny_models(root)
    return root, diffusion, autoencoder


def sweep(inputs, out_name: str) -> dict:
    root, diffusion, autoencoder = inputs
    return run_sweep(CFG, SamplerConfig(guidance_scale=1.5), diffusion, autoencoder, root / "classifier",
                     root / "prepared", root / out_name, device="cpu", threads=1)


def test_every_sampler_and_step_count_gets_a_scored_row(inputs):
    result = sweep(inputs, "sweep")
    rows = result["rows"]
    assert [(r["sampler"], r["steps"]) for r in rows] == [(s, n) for s in ("ddim", "heun", "pc") for n in (2, 4)]
    nfe = {(r["sampler"], r["steps"]): r["nfe"] for r in rows}
    assert nfe[("ddim", 4)] == 4 and nfe[("heun", 4)] > 4 and nfe[("pc", 4)] > 4  # heun and pc call twice per level
    for row in rows:
        assert 0.0 <= row["conditional_accuracy"] <= 1.0 and math.isfinite(row["fd"]) and row["fd"] >= 0
        assert 0.0 <= row["overhead"] < 1.0 and row["seconds"] > 0
    summary = json.loads((inputs[0] / "sweep" / "sweep.json").read_text())
    assert summary["samples"] == 6 and summary["baseline_fd"] >= 0 and summary["sampler"]["guidance_scale"] == 1.5


def test_the_csv_round_trips_into_the_curves_evaluate_plots(inputs):
    rows = sweep(inputs, "again")["rows"]
    curves = read_curves(inputs[0] / "again" / "sweep.csv")
    assert list(curves) == ["ddim", "heun", "pc"]
    assert curves["heun"] == [(r["steps"], pytest.approx(r["conditional_accuracy"])) for r in rows if r["sampler"] == "heun"]
    fd = read_curves(inputs[0] / "again" / "sweep.csv", "fd")
    assert fd["pc"][1] == (4, pytest.approx(rows[-1]["fd"]))


def test_runs_share_their_noise_so_repeats_match(inputs):
    first, second = sweep(inputs, "one")["rows"], sweep(inputs, "two")["rows"]
    for a, b in zip(first, second):
        assert (a["latent_mean"], a["latent_std"], a["fd"]) == (b["latent_mean"], b["latent_std"], b["fd"])
