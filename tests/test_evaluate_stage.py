"""The evaluate stage end to end on tiny shapes data: good data is published, bad data rejected,
copies are flagged per sample, and every output (report, plots, quality table, manifest) is written."""
from __future__ import annotations

import csv
import html
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from synthgen.config.data import DataConfig
from synthgen.config.evaluate import EvaluateConfig
from synthgen.data.shapes import CLASS_NAMES, render_shapes
from synthgen.errors import SynthgenError
from synthgen.evaluation.trained import load_classifier
from synthgen.imaging import encode_image
from synthgen.metrics.inception import InceptionWeightsMissing
from synthgen.releases.index import key_metrics
from synthgen.releases.publish import annotate_dataset
from synthgen.shards import ShardSample, ShardWriter, read_arrays, read_manifest
from synthgen.stages.evaluate import evaluate, load_inputs
from synthgen.stages.prepare import prepare_dataset
from synthgen.stages.train_classifier import train_classifier

CLASSES = ("red_circle", "green_square", "blue_triangle", "yellow_circle")
SIZE = 16
FAST_TRAIN = {"batch_size": 32, "lr": 3e-3, "warmup_steps": 2, "log_every": 10, "progress": False, "device": "cpu"}
CONFIG = {
    "classifier": {"widths": [8, 16], "blocks_per_stage": 1, "norm_groups": 4, "dropout": 0.0},
    "classifier_train": {**FAST_TRAIN, "steps": 40, "checkpoint_every": 40},
    "cas": {"samples": 96, "train": {**FAST_TRAIN, "steps": 15, "checkpoint_every": 15}, "runs": 2},
    "utility": {"train": {**FAST_TRAIN, "steps": 15, "checkpoint_every": 15}},
    "batch_size": 128, "kid_subsets": 10, "num_samples": 120, "memorisation_quantile": 0.02,
    "gate": {"min_conditional_accuracy": 0.6, "max_fd_ratio": 4.0, "max_near_duplicate_fraction": 0.05, "min_cas_ratio": None,
             "min_class_accuracy": None},
}
CFG = EvaluateConfig.model_validate(CONFIG)
SWEEP = {"ddim": [(10, 0.5), (20, 0.7)], "heun": [(10, 0.6), (20, 0.8), (40, 0.9)]}  # sampler -> (steps, accuracy)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def stage_inputs(tmp_path_factory):
    """Prepared data (four colour-separable classes at 16 px) and a classifier trained on it."""
    root = tmp_path_factory.mktemp("evaluate")
    prepared, classifier = root / "prepared", root / "classifier"
    prepare_dataset(DataConfig(resolution=SIZE, num_images=720, val_fraction=0.2, classes=CLASSES), prepared)
    train_px, train_y, _ = read_arrays(prepared / "train")
    val_px, val_y, _ = read_arrays(prepared / "val")
    with torch.random.fork_rng():
        torch.set_num_threads(1)
        train_classifier(CFG, train_px, train_y, val_px, val_y, list(CLASSES), classifier)
    return prepared, classifier, train_px


def fresh_shapes(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """New images of the prepared classes from the true distribution: what a perfect generator makes."""
    pixels, labels, _ = render_shapes(count * 3, SIZE, seed)
    keep = np.isin(np.array(CLASS_NAMES)[labels], CLASSES)
    relabel = np.array([CLASSES.index(n) if n in CLASSES else -1 for n in CLASS_NAMES])
    return pixels[keep][:count], relabel[labels[keep]][:count]


def write_synthetic(folder, pixels: np.ndarray, labels: np.ndarray, extra: dict | None = None):
    """A synthetic shard dataset as the sample stage writes one (seed, sampler and steps per row);
    `extra`: more manifest keys (the sample filter's record)."""
    writer = ShardWriter(folder, prefix="synthetic", max_count=64)
    for i, (image, label) in enumerate(zip(pixels, labels)):
        writer.write(ShardSample(key=f"synthetic-{i:09d}", image=encode_image(image), label=int(label),
                                 class_name=CLASSES[label], width=SIZE, height=SIZE, format="png",
                                 meta={"seed": i, "sampler": "ddim", "steps": 20}))
    writer.finish_dataset(extra=extra)
    return folder


def filter_manifest(classifier_sha256: str | None) -> dict:
    """The manifest key the sample stage writes: its filter's record (null when it ran without a filter)."""
    if classifier_sha256 is None:
        return {"filter": None}
    per_class = {name: {"attempts": 40, "accepted": 36 - 6 * i, "acceptance_rate": (36 - 6 * i) / 40,
                        "raw_accuracy": 0.95 - 0.1 * i} for i, name in enumerate(CLASSES)}
    accepted = sum(c["accepted"] for c in per_class.values())
    return {"filter": {"classifier_sha256": classifier_sha256, "min_confidence": 0.5, "max_attempts": 16,
                       "min_acceptance": 0.5, "attempts": 160, "accepted": accepted, "acceptance_rate": accepted / 160,
                       "per_class": per_class}}


def run(stage_inputs, synthetic, out, cfg: EvaluateConfig = CFG, **kwargs) -> dict:
    prepared, classifier, _ = stage_inputs
    return evaluate(cfg, prepared, synthetic, classifier, out, **kwargs)


def failed(result: dict) -> set[str]:
    return {c["metric"] for c in result["checks"] if not c["passed"]}


@pytest.fixture(scope="module")
def good_run(stage_inputs, tmp_path_factory):
    """Fresh shapes with one planted copy of a training image, evaluated with a steps sweep."""
    root = tmp_path_factory.mktemp("good")
    pixels, labels = fresh_shapes(120, seed=7)
    train_px = stage_inputs[2]
    pixels[5] = train_px[11]
    result = run(stage_inputs, write_synthetic(root / "synthetic", pixels, labels), root / "eval", quality_vs_steps=SWEEP)
    return result, root


def test_a_faithful_dataset_is_published_with_baselines_beside_metrics(good_run):
    result, root = good_run
    assert result["status"] == "published" and result["reasons"] == [], result["metrics"]
    metrics = json.loads((root / "eval" / "metrics.json").read_text())
    for name in ("conditional_accuracy", "fd", "kid", "precision", "recall", "cas_accuracy", "near_duplicate_fraction",
                 "near_duplicate_fraction_pixels", "nn_distance_median_features"):
        assert f"{name}_baseline" in metrics, name
    assert metrics["conditional_accuracy"] > 0.9 and metrics["fd_ratio"] < 4 and metrics["published"] is True
    assert 0 < metrics["cas_ratio"] and metrics["cas_train_count"] == 96
    per_class = metrics.pop("conditional_accuracy_per_class")  # the one mapping: class -> accuracy
    assert sorted(per_class) == sorted(CLASSES) and all(0 <= v <= 1 for v in per_class.values())
    assert metrics["conditional_accuracy_worst_class"] == min(per_class.values())
    assert all(isinstance(v, (int, float, bool)) for v in metrics.values())  # flat, as DVC metrics
    assert not any(k.startswith("filter_") for k in metrics)  # sampled without a filter: no filter figures
    assert json.loads((root / "eval" / "gate.json").read_text())["status"] == "published"
    assert "status" not in read_manifest(root / "synthetic")  # the stage never edits another stage's output
    annotate_dataset(root / "synthetic", root / "eval")
    manifest = read_manifest(root / "synthetic")
    assert manifest["status"] == "published" and manifest["gate_reasons"] == []
    assert (root / "synthetic" / "quality.parquet").read_bytes() == (root / "eval" / "quality.parquet").read_bytes()
    assert manifest["num_samples"] == 120  # the rest of the manifest is kept


def test_a_planted_training_image_is_flagged_in_the_quality_table(good_run):
    _, root = good_run
    quality = pq.read_table(root / "eval" / "quality.parquet").to_pylist()
    metadata = pq.read_table(root / "synthetic" / "metadata.parquet", columns=["key"]).column("key").to_pylist()
    assert [row["key"] for row in quality] == metadata
    planted = quality[5]
    assert planted["near_duplicate"] and planted["nn_distance"] == pytest.approx(0, abs=1e-3)
    assert planted["pixel_nn_distance"] == pytest.approx(0, abs=1e-3)
    fresh_flagged = sum(row["near_duplicate"] for i, row in enumerate(quality) if i != 5)
    assert fresh_flagged <= 3
    assert all(0 < row["classifier_confidence"] <= 1 and 0 <= row["predicted_label"] < 4 for row in quality)


def test_plots_grid_and_report_are_written(good_run):
    _, root = good_run
    plots = root / "eval" / "plots"
    per_class = list(csv.DictReader((plots / "per_class_accuracy.csv").open()))
    assert [r["class_name"] for r in per_class] == list(CLASSES)
    assert all(0 <= float(r["conditional_accuracy"]) <= 1 for r in per_class)
    histogram = list(csv.DictReader((plots / "nn_distances.csv").open()))
    assert len(histogram) == CFG.histogram_bins
    assert sum(float(r["real_val"]) for r in histogram) == pytest.approx(1, abs=1e-4)
    assert sum(float(r["generated"]) for r in histogram) == pytest.approx(1, abs=1e-4)
    utility = list(csv.DictReader((plots / "utility.csv").open()))
    assert [(r["real_count"], r["fraction"]) for r in utility] == [("10", "0.05"), ("193", "1")]
    metrics = json.loads((root / "eval" / "metrics.json").read_text())
    for r in utility:
        label = f"{float(r['fraction']) * 100:g}pct"
        assert float(r["gain"]) == pytest.approx(metrics[f"utility_gain_{label}"], abs=1e-5)
        assert float(r["real_plus_synthetic"]) == pytest.approx(metrics[f"utility_augmented_accuracy_{label}"], abs=1e-5)
    assert metrics["utility_gain_smallest_n"] == metrics["utility_gain_5pct"] and metrics["utility_smallest_n"] == 10
    assert metrics["utility_synthetic_count"] == 120 and metrics["utility_steps"] == 15
    sweep = list(csv.reader((plots / "quality_vs_steps.csv").open()))
    assert sweep == [["steps", "ddim", "heun"], ["10", "0.5", "0.6"], ["20", "0.7", "0.8"], ["40", "", "0.9"]]
    from PIL import Image
    with Image.open(root / "eval" / "grid_per_class.png") as grid:
        scale = 64 // SIZE  # tiles are enlarged to 64 px
        assert grid.size == ((2 + CFG.gallery_per_class * (SIZE + 2)) * scale, (2 + len(CLASSES) * (SIZE + 2)) * scale)
    page = (root / "eval" / "report.html").read_text(encoding="utf-8")
    assert "http" not in page and "Published" in page and page.count("<svg") == 4
    assert "CAS accuracy" in page and "train #" in page and "Augmentation utility" in page
    assert "Sample filter" not in page and "Filter acceptance" not in page
    cas = root / "eval" / "cas"
    assert sorted(p.name for p in cas.iterdir()) == ["run-0", "run-1"]
    assert all((cas / run / "metrics.csv").is_file() and not (cas / run / "checkpoints").exists()
               for run in ("run-0", "run-1"))


def test_noise_is_rejected_and_the_manifest_says_why(stage_inputs, tmp_path):
    rng = np.random.default_rng(3)
    noise = rng.integers(0, 256, (120, SIZE, SIZE, 3), dtype=np.uint8)
    synthetic = write_synthetic(tmp_path / "synthetic", noise, np.arange(120) % len(CLASSES))
    no_utility = EvaluateConfig.model_validate({**CONFIG, "utility": {"enabled": False}})
    result = run(stage_inputs, synthetic, tmp_path / "eval", no_utility)
    assert not any(k.startswith("utility_") for k in result["metrics"])
    assert not (tmp_path / "eval" / "plots" / "utility.csv").exists()
    assert "Augmentation utility" not in (tmp_path / "eval" / "report.html").read_text(encoding="utf-8")
    assert result["status"] == "rejected"
    assert {"conditional_accuracy", "fd_ratio"} <= failed(result), result["metrics"]
    annotate_dataset(synthetic, tmp_path / "eval")
    manifest = read_manifest(synthetic)
    assert manifest["status"] == "rejected" and manifest["gate_reasons"] == result["reasons"]
    assert any(r.startswith("fd_ratio") for r in manifest["gate_reasons"])
    assert "Rejected" in (tmp_path / "eval" / "report.html").read_text(encoding="utf-8")


def test_shuffled_labels_are_rejected_per_class_and_the_outputs_name_the_classes(stage_inputs, tmp_path):
    pixels, labels = fresh_shapes(120, seed=8)
    shuffled = np.random.default_rng(4).permutation(labels)
    cfg = EvaluateConfig.model_validate({**CONFIG, "gate": {**CONFIG["gate"], "min_class_accuracy": 0.85}})
    result = run(stage_inputs, write_synthetic(tmp_path / "synthetic", pixels, shuffled), tmp_path / "eval", cfg)
    assert result["status"] == "rejected" and {"conditional_accuracy", "conditional_accuracy_per_class"} <= failed(result)
    assert result["metrics"]["conditional_accuracy"] < 0.5
    per_class = result["metrics"]["conditional_accuracy_per_class"]
    class_reasons = [r for r in result["reasons"] if r.startswith("class ")]
    assert class_reasons == [f"class {name}: conditional_accuracy_per_class = {v:.4g} fails: must be >= 0.85"
                             for name, v in per_class.items() if v < 0.85] and class_reasons
    worst = [name for name, v in per_class.items() if v == min(per_class.values())]  # ties are possible
    page = (tmp_path / "eval" / "report.html").read_text(encoding="utf-8")
    assert any(f"conditional_accuracy_per_class, worst: {name}" in page for name in worst)
    assert all(html.escape(reason) in page for reason in class_reasons)
    assert "gate minimum 85%" in page  # the per-class bars mark the per-class limit
    from flows.artifacts import run_summary_markdown
    markdown = run_summary_markdown(tmp_path / "eval", None, {"evaluate": "rejected"})
    assert all(f"- {reason}" in markdown for reason in class_reasons)
    assert any(f"Worst class: **{name}**" in markdown for name in worst)
    assert "| utility_gain_smallest_n | " in markdown


def test_optional_inception_fid_and_a_missing_weights_file(stage_inputs, tmp_path):
    class StandIn(torch.nn.Module):
        def forward(self, img: torch.Tensor, return_features: bool = False) -> torch.Tensor:
            return img.float().mean(dim=(2, 3))

    torch.jit.save(torch.jit.script(StandIn()), str(tmp_path / "inception.pt"))
    pixels, labels = fresh_shapes(48, seed=9)
    synthetic = write_synthetic(tmp_path / "synthetic", pixels, labels)
    cfg = EvaluateConfig.model_validate({**CONFIG, "inception_weights": str(tmp_path / "inception.pt")})
    metrics = run(stage_inputs, synthetic, tmp_path / "eval", cfg)["metrics"]
    assert metrics["fid"] >= 0 and metrics["fid_baseline"] > 0
    missing = EvaluateConfig.model_validate({**CONFIG, "inception_weights": str(tmp_path / "absent.pt")})
    with pytest.raises(InceptionWeightsMissing, match="absent.pt"):
        run(stage_inputs, synthetic, tmp_path / "eval-missing", missing)
    assert not (tmp_path / "eval-missing").exists()


def test_params_that_differ_from_the_trained_reference_are_refused(stage_inputs, tmp_path):
    pixels, labels = fresh_shapes(48, seed=10)
    synthetic = write_synthetic(tmp_path / "synthetic", pixels, labels)
    changed = EvaluateConfig.model_validate({**CONFIG, "cas": {**CONFIG["cas"], "samples": 80}})
    with pytest.raises(SynthgenError, match=r"evaluate\.cas\.samples=96 \(params say 80\); re-run train_classifier"):
        run(stage_inputs, synthetic, tmp_path / "eval", changed)
    wrong_size = write_synthetic(tmp_path / "big", np.zeros((40, SIZE, SIZE, 3), np.uint8), np.arange(40) % 4)
    (wrong_size / "synthetic-000000.tar").write_bytes(b"corrupt")
    with pytest.raises(SynthgenError, match=r"fail their sha256"):
        run(stage_inputs, wrong_size, tmp_path / "eval")


def test_the_same_inputs_give_the_same_bytes(stage_inputs, good_run, tmp_path):
    _, root = good_run
    run(stage_inputs, root / "synthetic", tmp_path / "again", quality_vs_steps=SWEEP)
    for name in ("metrics.json", "gate.json", "report.html", "grid_per_class.png", "plots/nn_distances.csv",
                 "plots/utility.csv", "quality.parquet"):
        assert (tmp_path / "again" / name).read_bytes() == (root / "eval" / name).read_bytes(), name


def test_a_dataset_whose_class_names_differ_is_refused(stage_inputs, tmp_path):
    pixels, labels = fresh_shapes(40, seed=12)
    writer = ShardWriter(tmp_path / "synthetic", prefix="synthetic", max_count=64)
    for i, (image, label) in enumerate(zip(pixels, labels)):
        writer.write(ShardSample(key=f"s-{i:04d}", image=encode_image(image), label=int(label),
                                 class_name=CLASSES[(label + 1) % 4], width=SIZE, height=SIZE, format="png"))
    writer.finish_dataset()
    with pytest.raises(SynthgenError, match=r"sample s-0000 has label \d named '\w+', but the real data calls it"):
        run(stage_inputs, tmp_path / "synthetic", tmp_path / "eval")


def test_the_evaluator_is_never_the_filter_that_selected_the_samples(stage_inputs, tmp_path):
    prepared, classifier, _ = stage_inputs
    evaluator_sha256 = load_classifier(classifier).sha256
    pixels, labels = fresh_shapes(48, seed=13)
    self_judged = write_synthetic(tmp_path / "self", pixels, labels, filter_manifest(evaluator_sha256))
    with pytest.raises(SynthgenError, match=r"the evaluator .* is the filter that selected these samples; train the "
                                            r"evaluator with another seed or architecture") as err:
        run(stage_inputs, self_judged, tmp_path / "eval")
    assert "\n" not in str(err.value) and not (tmp_path / "eval").exists()
    for name, sha256 in (("other", "0" * 64), ("unfiltered", None)):
        synthetic = write_synthetic(tmp_path / name, pixels, labels, filter_manifest(sha256))
        loaded = load_inputs(CFG, prepared, synthetic, classifier, torch.device("cpu"))
        assert (loaded.filter is None) == (sha256 is None) and len(loaded.synthetic) == 48


def test_a_filtered_dataset_reports_the_filter_beside_the_independent_evaluator(stage_inputs, tmp_path):
    pixels, labels = fresh_shapes(96, seed=14)
    synthetic = write_synthetic(tmp_path / "synthetic", pixels, labels, filter_manifest("0" * 64))
    cfg = EvaluateConfig.model_validate({**CONFIG, "num_samples": 96, "utility": {"enabled": False}})
    metrics = run(stage_inputs, synthetic, tmp_path / "eval", cfg)["metrics"]
    assert metrics["filter_acceptance_rate"] == pytest.approx((36 + 30 + 24 + 18) / 160)
    assert metrics["filter_acceptance_rate_per_class"] == pytest.approx(dict(zip(CLASSES, (0.9, 0.75, 0.6, 0.45))))
    assert metrics["filter_acceptance_rate_worst_class"] == pytest.approx(0.45)
    assert metrics["filter_raw_accuracy"] == pytest.approx(np.mean([0.95, 0.85, 0.75, 0.65]))  # equal attempts
    assert metrics["conditional_accuracy"] > 0.9  # the evaluator's figure on the published data, beside them
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["filter_acceptance_rate"] == pytest.approx(0.675)
    page = (tmp_path / "eval" / "report.html").read_text(encoding="utf-8")
    assert "Sample filter and evaluator per class" in page and "independent classifier" in page
    evaluator = metrics["conditional_accuracy_per_class"]["blue_triangle"]
    assert f"<td>blue_triangle</td><td class=\"num\">60.0%</td><td class=\"num\">75.0%</td>" \
           f"<td class=\"num strong\">{evaluator:.1%}</td>" in page
    assert "Filter acceptance rate" in page and "sha256 000000000000, min confidence 0.5, at most 16 attempts" in page
    from flows.artifacts import run_summary_markdown
    assert "| filter_acceptance_rate | 0.675 |" in run_summary_markdown(tmp_path / "eval", None, {})
    assert key_metrics(tmp_path / "eval")["filter_acceptance_rate"] == pytest.approx(0.675)
