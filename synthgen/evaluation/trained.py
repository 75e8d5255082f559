"""A trained feature-classifier folder: writing it, and rebuilding the classifier from it alone.

Files: model.safetensors (+ model.manifest.json with its sha256, written last), config.json (the
architecture, the params it was trained with, the class names and the image size) and metrics.json.
The evaluator (stage train_classifier) and the sampling filter (stage train_filter) are both such folders.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from synthgen.atomic import atomic_write_json
from synthgen.config.evaluate import ClassifierConfig
from synthgen.models.classifier import FeatureClassifier
from synthgen.training.checkpoint import save_verified
from synthgen.training.trained_folder import CONFIG, load_weights, read_json, require_files

WEIGHTS, METRICS = "model.safetensors", "metrics.json"


@dataclass
class TrainedClassifier:
    """The classifier in eval mode, what it was trained with, and the sha256 of its weights."""

    model: FeatureClassifier
    class_names: list[str]
    image_size: tuple[int, int]  # (H, W) of the images it was trained on
    trained_with: dict[str, Any]  # the params section of the training run, as JSON (evaluate, or sample.filter)
    metrics: dict[str, Any]  # its metrics.json: real val accuracy, the CAS reference accuracy
    sha256: str


def write_trained(out_dir: str | Path, model: FeatureClassifier, architecture: ClassifierConfig,
                  trained_with: dict[str, Any], class_names: list[str], image_size: tuple[int, int],
                  metrics: dict[str, Any]) -> str:
    """Write config.json, metrics.json, then the weights (their manifest last); return the weights' sha256."""
    out_dir = Path(out_dir)
    config = {"classifier": architecture.model_dump(mode="json"), "trained_with": trained_with,
              "class_names": list(class_names), "image_size": list(image_size)}
    atomic_write_json(out_dir / CONFIG, config)
    atomic_write_json(out_dir / METRICS, metrics)
    return save_verified(out_dir / WEIGHTS, model.state_dict())


def load_classifier(model_dir: str | Path, device: str | torch.device = "cpu") -> TrainedClassifier:
    """Rebuild the classifier from its folder, refusing weights whose sha256 differs from the manifest."""
    model_dir = Path(model_dir)
    require_files(model_dir, (CONFIG, METRICS), "run the stage that trains it first (train_classifier, train_filter)")
    config = read_json(model_dir / CONFIG)
    network = FeatureClassifier(ClassifierConfig.model_validate(config["classifier"]), len(config["class_names"]))
    model, digest = load_weights(network, model_dir / WEIGHTS, device)
    return TrainedClassifier(
        model=model,
        class_names=list(config["class_names"]),
        image_size=tuple(config["image_size"]),
        trained_with=config["trained_with"],
        metrics=read_json(model_dir / METRICS),
        sha256=digest,
    )
