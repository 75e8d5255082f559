"""Stage `train_filter`: the classifier that screens every generated image in stage `sample`.

It learns the real train split as the evaluator does (stage `train_classifier`), but with its own
architecture and seed (`sample.filter`; params refuse a copy of the evaluator), so evaluation never
scores its own choices. `out_dir` is a classifier folder (`synthgen.evaluation.trained`):
  model.safetensors (+ .manifest.json)  the filter's weights (manifest written last)
  config.json                           architecture, the sample.filter params, class names, image size
  metrics.json                          real val accuracy, overall and per class
  metrics.csv, checkpoints/             per-step metrics; a re-run resumes from the newest checkpoint
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from synthgen.config.params import Params
from synthgen.evaluation.features import class_accuracy
from synthgen.evaluation.trained import write_trained
from synthgen.outputs import writes
from synthgen.shards import read_arrays
from synthgen.stages.layout import PreparedLayout
from synthgen.stages.train_classifier import check_real_splits, fit_classifier

log = logging.getLogger(__name__)


def train_filter(params: Params, train_pixels: np.ndarray, train_labels: np.ndarray, val_pixels: np.ndarray,
                 val_labels: np.ndarray, class_names: list[str], out_dir: str | Path) -> dict[str, Any]:
    """Train the filter on real uint8 images (N, H, W, 3), measure it on real val, write `out_dir`."""
    cfg, augment = params.sample.filter, params.evaluate.augment
    num_classes = len(class_names)
    check_real_splits(train_pixels, train_labels, val_pixels, val_labels, num_classes)
    result = fit_classifier(cfg.classifier, cfg.train, augment, train_pixels, train_labels, num_classes, out_dir)
    if result.rank != 0:
        return {"rank": result.rank}
    model = result.final_model.eval()
    val = class_accuracy(model, val_pixels, val_labels, params.evaluate.batch_size)
    metrics = {"val_accuracy": val.overall, "val_accuracy_per_class": dict(zip(class_names, val.per_class)),
               "val_count": len(val_pixels), "train_count": len(train_pixels)}
    trained_with = {"filter": cfg.model_dump(mode="json"), "augment": augment.model_dump(mode="json")}
    digest = write_trained(out_dir, model.cpu(), cfg.classifier, trained_with, class_names, train_pixels.shape[1:3],
                           metrics)
    log.info("filter: real val accuracy %.4f", val.overall)
    return {**metrics, "steps": result.step, "train_seconds": result.seconds, "model_sha256": digest,
            "out_dir": str(out_dir)}


@dataclass(frozen=True)
class Inputs:
    prepared: PreparedLayout


@writes("train_filter")
def run(params: Params, inputs: Inputs, out: Path) -> dict[str, Any]:
    """The stage: train on the real train split, measure on real val, write `out`."""
    train, val = (read_arrays(inputs.prepared.split(split)) for split in PreparedLayout.SPLITS)
    return train_filter(params, train[0], train[1], val[0], val[1], inputs.prepared.class_names(), out)
