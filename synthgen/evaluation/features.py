"""What the feature classifier says about uint8 image arrays, and the seeded subsets the metrics use."""
from __future__ import annotations

import numpy as np
import torch

from synthgen.errors import SynthgenError
from synthgen.metrics.conditional import ConditionalAccuracy, conditional_accuracy
from synthgen.models.classifier import Embedding, FeatureClassifier, embed

CONVERT_CHUNK = 4096  # uint8 images converted to float at a time: bounds memory on large sets


def check_images(pixels: np.ndarray, labels: np.ndarray, name: str, num_classes: int) -> None:
    """Refuse anything but uint8 (N, H, W, 3) with N >= 1 and one label in range per image."""
    if not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8 or pixels.ndim != 4 or pixels.shape[-1] != 3:
        raise SynthgenError(f"{name} images must be a uint8 array (N, H, W, 3); got {getattr(pixels, 'dtype', type(pixels))} "
                            f"{getattr(pixels, 'shape', '')}")
    if len(pixels) == 0:
        raise SynthgenError(f"{name} holds no images")
    labels = np.asarray(labels)
    if labels.shape != (len(pixels),):
        raise SynthgenError(f"{name}: {labels.shape} labels for {len(pixels)} images; need one label per image")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise SynthgenError(f"{name}: labels span {labels.min()}..{labels.max()}, but there are {num_classes} classes")


def pixels_nchw(pixels: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) to a contiguous uint8 tensor (N, 3, H, W), the form training data is kept in."""
    return torch.from_numpy(np.ascontiguousarray(pixels)).permute(0, 3, 1, 2).contiguous()


def to_model_range(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 images (N, 3, H, W) to float in [-1, 1], as `synthgen.imaging.from_uint8` does."""
    return pixels.float() / 127.5 - 1


def embed_pixels(model: FeatureClassifier, pixels: np.ndarray, batch_size: int) -> Embedding:
    """Features and logits (CPU, float32) of uint8 images (N, H, W, 3), converted chunk by chunk."""
    parts = [embed(model, to_model_range(pixels_nchw(pixels[i : i + CONVERT_CHUNK])), batch_size)
             for i in range(0, len(pixels), CONVERT_CHUNK)]
    return Embedding(torch.cat([p.features for p in parts]), torch.cat([p.logits for p in parts]))


def class_accuracy(model: FeatureClassifier, pixels: np.ndarray, labels: np.ndarray, batch_size: int) -> ConditionalAccuracy:
    """Accuracy overall and per class of `model` on labelled images."""
    return conditional_accuracy(embed_pixels(model, pixels, batch_size).predicted, torch.as_tensor(labels), model.num_classes)


def seeded_subset(count: int, size: int, seed: int) -> np.ndarray:
    """min(size, count) distinct indices of range(count), drawn from `seed`, in ascending order."""
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    return np.sort(order[: min(size, count)].numpy())


def matched_subsets(count: int, size: int, seed: int) -> list[np.ndarray]:
    """Disjoint random subsets of range(count), each of exactly `size` (at least one, then as many as fit).

    FD and precision/recall depend on the sample size, so the generated set is cut into subsets as
    large as the real baseline set and the metric is averaged over them.
    """
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed)).numpy()
    size = min(size, count)
    return [np.sort(order[i : i + size]) for i in range(0, count - size + 1, size)]
