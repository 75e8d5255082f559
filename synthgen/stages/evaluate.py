"""Stage `evaluate`: score a synthetic dataset against the real data, then gate it.

`evaluate` writes into `out_dir` (named by `EvalLayout`):
  metrics.json                  every metric beside its real-versus-real baseline (DVC metrics); flat but
                                for per-class metrics, each a {class name: value} mapping; with the sample
                                filter's acceptance rates when the synthetic manifest has a filter record
  gate.json                     the verdict: status, reasons and every check
  plots/per_class_accuracy.csv  conditional accuracy per class beside the classifier's real val accuracy
  plots/utility.csv             real val accuracy against n real training images, without and with the
                                synthetic set, when evaluate.utility.enabled
  plots/nn_distances.csv        histogram of distances to the nearest training image, real val and generated
  plots/quality_vs_steps.csv    conditional accuracy per sampler and step count, when a sweep is passed in
  grid_per_class.png            one row of generated samples per class
  report.html                   the self-contained report
  cas/run-<k>/metrics.csv       per-step metrics of each CAS classifier (trained on synthetic images only)
  quality.parquet               per-sample quality, keyed by key, joinable with metadata.parquet
It never modifies the synthetic dataset (the output of another stage): `synthgen.stages.release`
carries the verdict into a dataset folder when it is released.
"""
from __future__ import annotations

import logging
import math
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from synthgen.atomic import atomic_write_json
from synthgen.config.evaluate import EvaluateConfig
from synthgen.config.training import TrainConfig
from synthgen.evaluation.checks import check_classifier_fits, check_evaluator_is_not_filter, check_synthetic_fits
from synthgen.evaluation.features import class_accuracy, embed_pixels, matched_subsets, pixels_nchw, seeded_subset, to_model_range
from synthgen.evaluation.filter_record import FilterRecord, filter_metrics, read_filter_record
from synthgen.evaluation.inputs import LabelledImages, RealData, load_prepared, load_synthetic
from synthgen.evaluation.plots import (
    save_class_grid, write_nn_distances, write_per_class_accuracy, write_quality_vs_steps, write_utility,
)
from synthgen.evaluation.quality import quality_table, write_quality
from synthgen.evaluation.report import write_evaluation_report
from synthgen.evaluation.scores import (
    cas_metrics, conditional_with_baseline, fd_with_baseline, gate_space_aliases, kid_with_baseline,
    memorisation_summary, precision_recall_with_baseline,
)
from synthgen.evaluation.sweep import read_curves
from synthgen.evaluation.trained import TrainedClassifier, load_classifier
from synthgen.metrics.gate import GateVerdict, evaluate_gate
from synthgen.metrics.inception import inception_features, load_inception
from synthgen.metrics.memorisation import Memorisation, flatten_pixels, memorisation
from synthgen.metrics.utility import UtilityPoint, measure_utility, utility_metrics, utility_runs
from synthgen.outputs import writes
from synthgen.seeds import derive_seed
from synthgen.shards import read_manifest
from synthgen.stages.layout import ClassifierLayout, EvalLayout, PreparedLayout, SweepLayout, SyntheticLayout, run_dirs
from synthgen.stages.train_classifier import fit_classifier
from synthgen.training.distributed import cpu_threads, resolve_device
from synthgen.training.side_by_side import run_side_by_side, worker_count

log = logging.getLogger(__name__)


# ---- measurements ---------------------------------------------------------------------------


def pixel_rows(pixels: np.ndarray) -> torch.Tensor:
    """uint8 images (N, H, W, 3) as (N, 3*H*W) rows in [-1, 1], the pixel space of memorisation."""
    return flatten_pixels(to_model_range(pixels_nchw(pixels)))


def memorisation_by_space(cfg: EvaluateConfig, features: Mapping[str, torch.Tensor], real: RealData,
                          generated: np.ndarray) -> dict[str, Memorisation]:
    """Nearest training image of every generated image in feature space and in pixel space."""
    q, chunk = cfg.memorisation_quantile, cfg.distance_chunk
    return {
        "features": memorisation(features["generated"], features["train"], features["val"], q, chunk),
        "pixels": memorisation(pixel_rows(generated), pixel_rows(real.train.pixels), pixel_rows(real.val.pixels), q, chunk),
    }


def fit_and_score(cfg: EvaluateConfig, train_cfg: TrainConfig, images: LabelledImages, val: LabelledImages,
                  num_classes: int, run_dir: Path) -> float:
    """Real val accuracy of a classifier (the evaluate architecture) trained from scratch on `images`.

    Always a fresh run (the data may have changed); only its metrics.csv is kept in `run_dir`.
    """
    shutil.rmtree(run_dir, ignore_errors=True)
    result = fit_classifier(cfg.classifier, train_cfg, cfg.augment, images.pixels, images.labels, num_classes, run_dir)
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    return class_accuracy(result.final_model.eval(), val.pixels, val.labels, cfg.batch_size).overall


def cas_jobs(cfg: EvaluateConfig, synthetic: LabelledImages, val: LabelledImages, num_classes: int,
             cas_dir: Path) -> list[tuple]:
    """`fit_and_score`'s arguments for each CAS run (`cas.schedules()`): trained on one seeded subset of the synthetic
    images only, each run's metrics.csv in `cas_dir`/run-<k>."""
    chosen = synthetic.take(seeded_subset(len(synthetic), cfg.cas.samples, derive_seed(cfg.seed, "evaluate/cas_subset")))
    return [(cfg, schedule, chosen, val, num_classes, run_dir)
            for schedule, run_dir in zip(cfg.cas.schedules(), run_dirs(cas_dir, cfg.cas.runs))]


def utility_jobs(cfg: EvaluateConfig, real: RealData, synthetic: LabelledImages, runs: Sequence[tuple[int, bool]],
                 tmp: Path) -> list[tuple]:
    """`fit_and_score`'s arguments for each utility run (n, with the synthetic set): n real train images (a seeded
    subset; smaller fractions' images are part of larger ones'), alone or with `synthetic` added, one schedule and
    seed, scored on real val. Only the runs' metrics.csv land in `tmp`."""
    subset_seed, train_cfg = derive_seed(cfg.seed, "evaluate/utility_real_subset"), cfg.utility.train
    jobs = []
    for i, (n, with_synthetic) in enumerate(runs):
        images = real.train.take(seeded_subset(len(real.train), n, subset_seed))
        images = (images + synthetic if with_synthetic else images).repeated(train_cfg.batch_size)
        jobs.append((cfg, train_cfg, images, real.val, len(real.class_names), tmp / f"run-{i}"))
    return jobs


def classifier_runs(cfg: EvaluateConfig, real: RealData, synthetic: LabelledImages,
                    cas_dir: Path) -> tuple[list[float], int, list[UtilityPoint]]:
    """The accuracy of every CAS run with their training count, and the utility curve (`synthgen.metrics.utility`):
    independent classifier runs, side by side in `evaluate.classifier_workers` processes."""
    num_classes = len(real.class_names)
    cas = cas_jobs(cfg, synthetic, real.val, num_classes, cas_dir)
    runs = utility_runs(cfg.utility.fractions, len(real.train)) if cfg.utility.enabled else []
    workers = worker_count([cfg.cas.train, cfg.utility.train], cfg.classifier_workers)
    shutil.rmtree(cas_dir, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix="synthgen-utility-") as tmp:
        accuracies = run_side_by_side(fit_and_score, [*cas, *utility_jobs(cfg, real, synthetic, runs, Path(tmp))],
                                      workers)
    by_run = dict(zip(runs, accuracies[len(cas):]))
    utility = measure_utility(cfg.utility.fractions, len(real.train), lambda n, w: by_run[n, w]) if runs else []
    _, _, cas_images, *_ = cas[0]
    return accuracies[:len(cas)], len(cas_images), utility


def inception_fid(model: torch.nn.Module, real: RealData, measured: LabelledImages, cfg: EvaluateConfig) -> dict[str, float]:
    """FID (Heusel et al. 2017) with the user's local Inception weights, beside the real val baseline,
    on the same equal-sized subsets as the classifier-feature FD."""
    feats = {name: inception_features(model, images.pixels, cfg.batch_size)
             for name, images in (("train", real.train), ("val", real.val), ("generated", measured))}
    subsets, val_rows = equal_sized_sets(cfg, len(measured), len(real.val))
    return fd_with_baseline(feats["train"], feats["val"][val_rows], feats["generated"], subsets, name="fid")


def finite_or_none(value: Any) -> Any:
    """JSON-safe metrics: NaN and infinities become null (the gate reads null as not measured)."""
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite_or_none(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# ---- the stage ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Loaded:
    trained: TrainedClassifier
    real: RealData
    synthetic: LabelledImages  # every sample of the synthetic dataset
    measured: np.ndarray  # indices of the fixed-size, seeded sample the metrics use
    filter: FilterRecord | None  # how the sample stage's filter selected the samples; None without one


@dataclass(frozen=True)
class Scores:
    metrics: dict[str, Any]  # flat: each metric beside its baseline
    per_class: dict[str, dict[str, Any]]  # class -> accuracy, real_val_accuracy, requested
    memos: dict[str, Memorisation]  # "features" and "pixels": nearest training image of every sample
    logits: torch.Tensor  # classifier logits of every synthetic sample
    utility: list[UtilityPoint]  # one per evaluate.utility.fractions; empty when it is off
    classifier_seconds: float  # wall time of the CAS and utility runs


def load_inputs(cfg: EvaluateConfig, prepared_dir: Path, synthetic_dir: Path, classifier_dir: Path,
                device: torch.device) -> Loaded:
    """Classifier, real splits and synthetic set, checked against each other and against the params;
    the classifier must not be the filter that selected the synthetic samples."""
    trained = load_classifier(classifier_dir, device)
    real = load_prepared(prepared_dir)
    check_classifier_fits(trained, cfg, real, classifier_dir)
    synthetic = load_synthetic(synthetic_dir, real.class_names)
    check_synthetic_fits(synthetic, real, cfg)
    record = read_filter_record(read_manifest(synthetic_dir))
    check_evaluator_is_not_filter(trained, record, classifier_dir)
    measured = seeded_subset(len(synthetic), cfg.num_samples, derive_seed(cfg.seed, "evaluate/measured_subset"))
    return Loaded(trained, real, synthetic, measured, record)


def equal_sized_sets(cfg: EvaluateConfig, num_measured: int, num_val: int) -> tuple[list[np.ndarray], torch.Tensor]:
    """FD and precision/recall depend on sample size, so they compare equal-sized sets: disjoint
    val-sized subsets of the measured samples, against val (or a measured-sized subset of val
    when fewer samples are measured than val holds). Returns the subsets and the val rows."""
    size = min(num_measured, num_val)
    subsets = matched_subsets(num_measured, size, derive_seed(cfg.seed, "evaluate/equal_size_subsets"))
    return subsets, torch.as_tensor(seeded_subset(num_val, size, derive_seed(cfg.seed, "evaluate/equal_size_val")))


def distribution_scores(cfg: EvaluateConfig, feats: Mapping[str, torch.Tensor], measured: np.ndarray) -> dict[str, float]:
    """FD, KID and precision/recall of the measured samples against train, with the real val baselines."""
    subsets, val_rows = equal_sized_sets(cfg, len(measured), len(feats["val"]))
    val = feats["val"][val_rows]
    generated = feats["generated"][torch.as_tensor(measured)]
    return {**fd_with_baseline(feats["train"], val, generated, subsets),
            **kid_with_baseline(feats["train"], feats["val"], generated, cfg),
            **precision_recall_with_baseline(feats["train"], val, generated, subsets, cfg)}


def score(cfg: EvaluateConfig, inputs: Loaded, inception: torch.nn.Module | None, out_dir: Path) -> Scores:
    """Every metric of the measured samples, and the per-sample facts of all of them."""
    real, synthetic, measured = inputs.real, inputs.synthetic, inputs.measured
    # 1) classifier features and logits of the three sets
    emb = {name: embed_pixels(inputs.trained.model, images.pixels, cfg.batch_size)
           for name, images in (("train", real.train), ("val", real.val), ("generated", synthetic))}
    feats = {name: e.features for name, e in emb.items()}
    # 2) class faithfulness (beside the filter's acceptance, when one selected the samples), fidelity and
    #    diversity, each beside its real val baseline
    conditional, per_class = conditional_with_baseline(emb["generated"].predicted[torch.as_tensor(measured)],
                                                       synthetic.labels[measured], emb["val"].predicted,
                                                       real.val.labels, real.class_names)
    metrics: dict[str, Any] = {"num_generated": len(synthetic), "num_measured": len(measured),
                               "num_train": len(real.train), "num_val": len(real.val),
                               **conditional, **filter_metrics(inputs.filter, real.class_names),
                               **distribution_scores(cfg, feats, measured)}
    # 3) memorisation in both spaces; the gate reads the configured one
    memos = memorisation_by_space(cfg, feats, real, synthetic.pixels)
    for space, memo in memos.items():
        metrics.update(memorisation_summary(memo, measured, space))
    metrics.update(gate_space_aliases(metrics, cfg.memorisation_space))
    # 4) usefulness: CAS against the real reference that train_classifier trained, and the utility curve
    start = time.perf_counter()
    cas_accuracies, cas_count, utility = classifier_runs(cfg, real, synthetic.take(measured), EvalLayout(out_dir).cas)
    metrics.update(cas_metrics(cas_accuracies, cas_count, inputs.trained.metrics))
    if utility:
        metrics.update(utility_metrics(utility, len(measured), cfg.utility.train.steps))
    if inception is not None:
        metrics.update(inception_fid(inception, real, synthetic.take(measured), cfg))
    return Scores(metrics, per_class, memos, emb["generated"].logits, utility, time.perf_counter() - start)


def write_outputs(cfg: EvaluateConfig, inputs: Loaded, scores: Scores, verdict: GateVerdict, synthetic_dir: Path,
                  out_dir: Path, quality_vs_steps: Mapping[str, Sequence[tuple[float, float]]] | None) -> dict[str, Any]:
    """metrics.json, gate.json, plots, grid, quality.parquet and report.html; returns the metrics as written."""
    real, synthetic, trained = inputs.real, inputs.synthetic, inputs.trained
    gate_memo = scores.memos[cfg.memorisation_space]
    layout = EvalLayout(out_dir)
    metrics_json = finite_or_none({**scores.metrics, "published": verdict.published})
    atomic_write_json(layout.metrics, metrics_json)
    atomic_write_json(layout.gate, finite_or_none(verdict.to_dict()))
    write_plots(cfg, layout, scores, quality_vs_steps)
    save_class_grid(layout.grid, synthetic.pixels, synthetic.labels, len(real.class_names),
                    cfg.gallery_per_class)
    quality = quality_table(synthetic.keys, synthetic.labels, scores.logits, gate_memo, scores.memos["features"],
                            scores.memos["pixels"], real.train.keys, inputs.measured)
    write_quality([out_dir], quality)
    details = {"synthetic dataset": str(synthetic_dir),
               "generated": f"{len(inputs.measured)} measured of {len(synthetic)}",
               "real": f"{len(real.train)} train, {len(real.val)} val",
               "classifier": f"{trained.metrics['val_accuracy']:.1%} real val accuracy, sha256 {trained.sha256[:12]}",
               "seed": cfg.seed}
    if inputs.filter is not None:
        details["sample filter"] = (f"sha256 {inputs.filter.classifier_sha256[:12]}, min confidence "
                                    f"{inputs.filter.min_confidence:g}, at most {inputs.filter.max_attempts} attempts")
    write_evaluation_report(layout.report, verdict=verdict, metrics=scores.metrics, per_class=scores.per_class,
                            memo=gate_memo, space=cfg.memorisation_space, generated=synthetic.pixels,
                            requested=synthetic.labels, train=real.train.pixels, class_names=real.class_names,
                            details=details, per_class_shown=cfg.gallery_per_class, worst_pairs=cfg.worst_pairs,
                            quality_vs_steps=quality_vs_steps, utility=scores.utility)
    return metrics_json


def write_plots(cfg: EvaluateConfig, layout: EvalLayout, scores: Scores,
                quality_vs_steps: Mapping[str, Sequence[tuple[float, float]]] | None) -> None:
    """The DVC plot files: per-class accuracy, the distance histogram, and the utility curve and the
    steps sweep when there are."""
    memo = scores.memos[cfg.memorisation_space]
    write_per_class_accuracy(layout.plot("per_class_accuracy"), scores.per_class)
    write_nn_distances(layout.plot("nn_distances"), memo.real_distances.numpy(), memo.distances.numpy(),
                       cfg.histogram_bins)
    if scores.utility:
        write_utility(layout.plot("utility"), scores.utility)
    if quality_vs_steps:
        write_quality_vs_steps(layout.plot("quality_vs_steps"), quality_vs_steps)


def evaluate(cfg: EvaluateConfig, prepared_dir: str | Path, synthetic_dir: str | Path, classifier_dir: str | Path,
             out_dir: str | Path, *, quality_vs_steps: Mapping[str, Sequence[tuple[float, float]]] | None = None) -> dict[str, Any]:
    """Score the synthetic dataset, gate it, and write the files named in the module docstring.

    `quality_vs_steps` (sampler -> [(steps, conditional accuracy), ...], from the sampler sweep) is
    plotted when given. Returns the verdict
    (status, reasons, checks) with the metrics; a rejection is returned, not raised. The classifier
    runs on `classifier_train.device` with `classifier_train.cpu_threads`.
    """
    start = time.perf_counter()
    synthetic_dir, out_dir = Path(synthetic_dir), Path(out_dir)
    with cpu_threads(cfg.classifier_train.cpu_threads):
        device = resolve_device(cfg.classifier_train.device)
        inception = load_inception(cfg.inception_weights, device) if cfg.inception_weights else None  # fail before work
        inputs = load_inputs(cfg, Path(prepared_dir), synthetic_dir, Path(classifier_dir), device)
        scores = score(cfg, inputs, inception, out_dir)
    verdict = evaluate_gate(scores.metrics, cfg.gate)
    metrics_json = write_outputs(cfg, inputs, scores, verdict, synthetic_dir, out_dir, quality_vs_steps)
    seconds = time.perf_counter() - start
    log.info("evaluate: %s in %.1f s (CAS and utility %.1f s) %s", verdict.status, seconds, scores.classifier_seconds,
             verdict.reasons)
    return {**finite_or_none(verdict.to_dict()), "metrics": metrics_json, "seconds": seconds,
            "classifier_seconds": scores.classifier_seconds, "out_dir": str(out_dir)}


@dataclass(frozen=True)
class Inputs:
    prepared: PreparedLayout  # the real data
    synthetic: SyntheticLayout
    classifier: ClassifierLayout
    sweep: SweepLayout  # its quality-versus-steps curve is plotted when sweep.csv is there


@writes("evaluate")
def run(cfg: EvaluateConfig, inputs: Inputs, out: Path) -> dict[str, Any]:
    """The stage: `evaluate` the synthetic dataset into `out`, with the sweep's curve when there is one."""
    curves = read_curves(inputs.sweep.csv) if inputs.sweep.csv.is_file() else None
    return evaluate(cfg, inputs.prepared.root, inputs.synthetic.root, inputs.classifier.root, out,
                    quality_vs_steps=curves)
