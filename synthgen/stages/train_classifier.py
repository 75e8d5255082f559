"""Stage `train_classifier`: the feature classifier every metric is measured in, and the real CAS reference.

`train_classifier` writes into `out_dir` (named by `ClassifierLayout` and `evaluation.trained`):
  model.safetensors (+ .manifest.json)  weights of the feature classifier (manifest written last)
  config.json                           architecture, evaluate params, class names and image size (trained.py)
  metrics.json                          real val accuracy, overall and per class; the CAS reference accuracy
  metrics.csv                           per-step training metrics (x = step)
  checkpoints/                          training checkpoints; a re-run resumes from the newest
  cas_reference/run-<k>/                metrics.csv and checkpoints of each CAS reference run
The CAS reference is the same architecture trained with the CAS schedules (`cas.runs` seeds) on
`cas.samples` real training images: the evaluate stage trains its synthetic twins, and the ratio of
their mean real val accuracies is the CAS ratio, so schedule and data size cancel out of it.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from synthgen.config.evaluate import AugmentConfig, ClassifierConfig, EvaluateConfig
from synthgen.config.training import TrainConfig
from synthgen.errors import SynthgenError
from synthgen.evaluation.augment import augment
from synthgen.evaluation.features import check_images, class_accuracy, pixels_nchw, seeded_subset, to_model_range
from synthgen.evaluation.trained import write_trained
from synthgen.metrics.conditional import mean_over_runs
from synthgen.models.classifier import FeatureClassifier
from synthgen.outputs import writes
from synthgen.seeds import derive_seed
from synthgen.shards import read_arrays
from synthgen.stages.layout import ClassifierLayout, PreparedLayout, TrainedModelLayout, run_dirs
from synthgen.training.loop import MAIN, TrainResult, train
from synthgen.training.rng import seeded_cpu_rng
from synthgen.training.side_by_side import run_side_by_side, worker_count

log = logging.getLogger(__name__)



class ClassifierObjective:
    """Cross-entropy on augmented uint8 batches {"pixels": (N, 3, H, W), "labels": (N,)}; logs batch accuracy."""

    def __init__(self, augment_cfg: AugmentConfig):
        self.augment_cfg = augment_cfg

    def __call__(self, nets: Mapping[str, torch.nn.Module], batch: dict[str, torch.Tensor], generator: torch.Generator,
                 step: int) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        images = augment(to_model_range(batch["pixels"]), self.augment_cfg, generator)
        logits = nets[MAIN](images).float()
        loss = F.cross_entropy(logits, batch["labels"])
        accuracy = (logits.argmax(dim=1) == batch["labels"]).float().mean()
        return {MAIN: loss}, {"accuracy": accuracy}


def build_classifier(cfg: ClassifierConfig, num_classes: int, seed: int) -> FeatureClassifier:
    """A freshly initialised classifier; the weights depend only on (cfg, num_classes, seed)."""
    with seeded_cpu_rng(derive_seed(seed, "classifier/init")):
        return FeatureClassifier(cfg, num_classes)


def fit_classifier(model_cfg: ClassifierConfig, train_cfg: TrainConfig, augment_cfg: AugmentConfig, pixels: np.ndarray,
                   labels: np.ndarray, num_classes: int, run_dir: str | Path) -> TrainResult:
    """Train a classifier on uint8 images (N, H, W, 3) with the shared loop; checkpoints and metrics.csv
    go to `run_dir`, and a re-run with the same data and settings resumes from its newest checkpoint."""
    layout = TrainedModelLayout(Path(run_dir))
    nets = {MAIN: build_classifier(model_cfg, num_classes, train_cfg.seed)}
    data = {"pixels": pixels_nchw(pixels), "labels": torch.as_tensor(labels, dtype=torch.long)}
    run_config = {"classifier": model_cfg.model_dump(mode="json"), "augment": augment_cfg.model_dump(mode="json"),
                  "num_classes": num_classes}
    return train(train_cfg, nets, ClassifierObjective(augment_cfg), data, layout.checkpoints, layout.metrics_csv,
                 run_config=run_config)


def check_real_splits(train_pixels: np.ndarray, train_labels: np.ndarray, val_pixels: np.ndarray,
                      val_labels: np.ndarray, num_classes: int) -> None:
    """Refuse real splits a classifier cannot learn and be measured on: empty val, bad arrays, two sizes."""
    if len(val_pixels) == 0:
        raise SynthgenError("the val split is empty: the classifier is measured on it; raise data.val_fraction")
    check_images(train_pixels, train_labels, "train", num_classes)
    check_images(val_pixels, val_labels, "val", num_classes)
    if train_pixels.shape[1:] != val_pixels.shape[1:]:
        raise SynthgenError(f"train images are {train_pixels.shape[1:3]} but val images are {val_pixels.shape[1:3]}; "
                            "prepare both splits at one resolution")


def train_classifier(cfg: EvaluateConfig, train_pixels: np.ndarray, train_labels: np.ndarray, val_pixels: np.ndarray,
                     val_labels: np.ndarray, class_names: list[str], out_dir: str | Path) -> dict[str, Any]:
    """Train the feature classifier and the CAS reference on real uint8 images (N, H, W, 3), measure
    both on real val, and write the folder described in the module docstring. Returns a summary.

    Under torchrun every rank trains; only rank 0 measures and writes, the others return {"rank": r}.
    """
    out_dir = Path(out_dir)
    num_classes = len(class_names)
    check_real_splits(train_pixels, train_labels, val_pixels, val_labels, num_classes)
    # 1) the feature classifier, on every training image, and 2) the CAS reference: the CAS schedules on as many
    #    real images as CAS trains on synthetic ones; independent runs, side by side when cores allow
    real_seed = derive_seed(cfg.cas.train.seed, "classifier/cas_real_subset")
    subset = seeded_subset(len(train_pixels), cfg.cas.samples, real_seed)
    reference_dir = ClassifierLayout(out_dir).cas_reference
    jobs = [(cfg.classifier, cfg.classifier_train, cfg.augment, train_pixels, train_labels, num_classes, out_dir),
            *((cfg.classifier, schedule, cfg.augment, train_pixels[subset], train_labels[subset], num_classes, run_dir)
              for schedule, run_dir in zip(cfg.cas.schedules(), run_dirs(reference_dir, cfg.cas.runs)))]
    workers = worker_count([cfg.classifier_train, cfg.cas.train], cfg.classifier_workers)
    result, *references = run_side_by_side(fit_classifier, jobs, workers)
    if result.rank != 0:
        return {"rank": result.rank}
    # 3) real val accuracy of all, then the outputs (weights last)
    model = result.final_model.eval()
    val = class_accuracy(model, val_pixels, val_labels, cfg.batch_size)
    reference_accuracy, reference_std = mean_over_runs([
        class_accuracy(reference.final_model.eval(), val_pixels, val_labels, cfg.batch_size).overall
        for reference in references])
    metrics = {
        "val_accuracy": val.overall,
        "val_accuracy_per_class": dict(zip(class_names, val.per_class)),
        "val_count": len(val_pixels),
        "train_count": len(train_pixels),
        "cas_reference_accuracy": reference_accuracy,
        "cas_reference_accuracy_std": reference_std,
        "cas_reference_runs": len(references),
        "cas_reference_train_count": len(subset),
    }
    digest = write_trained(out_dir, model.cpu(), cfg.classifier, cfg.model_dump(mode="json"), class_names,
                           train_pixels.shape[1:3], metrics)
    log.info("classifier: real val accuracy %.4f, CAS reference %.4f (mean of %d)", val.overall,
             metrics["cas_reference_accuracy"], metrics["cas_reference_runs"])
    return {**metrics, "steps": result.step, "resumed_from": result.resumed_from, "train_seconds": result.seconds,
            "images_per_s": result.images_per_s, "model_sha256": digest, "out_dir": str(out_dir)}


@dataclass(frozen=True)
class Inputs:
    prepared: PreparedLayout


@writes("train_classifier")
def run(cfg: EvaluateConfig, inputs: Inputs, out: Path) -> dict[str, Any]:
    """The stage: train on the real train split, measure on real val, write `out`."""
    train, val = (read_arrays(inputs.prepared.split(split)) for split in PreparedLayout.SPLITS)
    return train_classifier(cfg, train[0], train[1], val[0], val[1], inputs.prepared.class_names(), out)
