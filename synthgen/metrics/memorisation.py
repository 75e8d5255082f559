"""Memorisation check: each generated sample's nearest training sample, against a threshold set by real data.

The threshold is a low quantile of the distances from held-out real images (val) to their nearest
training image: a generated image closer to the training set than almost any genuinely new real
image is flagged as a near-duplicate (in the spirit of Carlini et al. 2023, "Extracting Training
Data from Diffusion Models", with a data-calibrated rather than fixed threshold).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from synthgen.metrics.frechet import Features
from synthgen.metrics.precision_recall import k_nearest


def flatten_pixels(images: torch.Tensor) -> torch.Tensor:
    """Images (N, C, H, W) to (N, C*H*W) float rows, for memorisation in pixel space."""
    return images.flatten(1).float()


def nearest_neighbour(query: Features, reference: Features, chunk_size: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """Distance (Nq,) and index (Nq,) of each query row's nearest reference row."""
    distances, indices = k_nearest(query, reference, 1, chunk_size)
    return distances[:, 0], indices[:, 0]


@dataclass(frozen=True)
class Memorisation:
    distances: torch.Tensor  # (N_gen,) distance of each generated sample to its nearest training sample
    indices: torch.Tensor  # (N_gen,) index of that training sample
    real_distances: torch.Tensor  # (N_val,) the same distance for held-out real samples; calibrates the threshold
    threshold: float  # `quantile` of real_distances; at or below it a sample counts as a near-duplicate
    quantile: float

    @property
    def near_duplicate(self) -> torch.Tensor:
        return self.distances <= self.threshold

    @property
    def near_duplicate_fraction(self) -> float:
        return self.near_duplicate.double().mean().item()


def memorisation(generated: Features, train: Features, real_val: Features, quantile: float = 0.01,
                 chunk_size: int = 1024) -> Memorisation:
    """Nearest training sample of every generated sample, flagged against the real val calibration.

    All three sets must live in the same space: classifier features, or `flatten_pixels` rows.
    By construction about `quantile` of fresh real images would be flagged, so the gate's
    maximum near-duplicate fraction should sit well above it.
    """
    assert 0 < quantile < 1, f"quantile must be in (0, 1), got {quantile}"
    distances, indices = nearest_neighbour(generated, train, chunk_size)
    real_distances, _ = nearest_neighbour(real_val, train, chunk_size)
    threshold = torch.quantile(real_distances.double(), quantile).item()
    return Memorisation(distances, indices, real_distances, threshold, quantile)
