"""Fréchet distance between two feature sets (FID when the features come from Inception-v3)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

Features = torch.Tensor | np.ndarray


def as_float64(features: Features) -> torch.Tensor:
    """Any (N, D) array to a float64 tensor on its device; the statistics need double precision."""
    x = features if isinstance(features, torch.Tensor) else torch.as_tensor(np.asarray(features))
    assert x.ndim == 2, f"features must be (N, D), got shape {tuple(x.shape)}"
    return x.detach().to(torch.float64)


@dataclass(frozen=True)
class GaussianStats:
    """Mean (D,) and unbiased covariance (D, D) of a feature set, in float64."""

    mean: torch.Tensor
    cov: torch.Tensor
    count: int


def gaussian_stats(features: Features) -> GaussianStats:
    x = as_float64(features)
    assert len(x) >= 2, "a covariance needs at least 2 samples"
    return GaussianStats(x.mean(0), torch.cov(x.T).reshape(x.shape[1], x.shape[1]), len(x))


def psd_sqrt(matrix: torch.Tensor) -> torch.Tensor:
    """Square root of a symmetric PSD matrix by eigendecomposition; round-off negatives clamp to 0."""
    sym = (matrix + matrix.T) / 2
    eigvals, eigvecs = torch.linalg.eigh(sym)
    return (eigvecs * eigvals.clamp(min=0).sqrt()) @ eigvecs.T


def trace_sqrt_product(cov_a: torch.Tensor, cov_b: torch.Tensor) -> torch.Tensor:
    """tr sqrt(A B) as tr sqrt(sqrt(A) B sqrt(A)): the inner matrix is symmetric PSD, so eigh is stable."""
    root_a = psd_sqrt(cov_a)
    inner = root_a @ cov_b @ root_a
    eigvals = torch.linalg.eigvalsh((inner + inner.T) / 2)
    return eigvals.clamp(min=0).sqrt().sum()


def frechet_distance_from_stats(a: GaussianStats, b: GaussianStats) -> float:
    """Heusel et al. 2017 (FID), eq. 6: |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2)).

    Computed in float64 via the symmetric form sqrt(S_a) S_b sqrt(S_a), which has the same
    eigenvalues as S_a S_b but stays symmetric PSD, so no complex parts appear.
    """
    assert a.mean.shape == b.mean.shape, f"feature dims differ: {a.mean.shape[0]} vs {b.mean.shape[0]}"
    mean_term = (a.mean - b.mean).square().sum()
    cov_term = a.cov.trace() + b.cov.trace() - 2 * trace_sqrt_product(a.cov, b.cov)
    return float((mean_term + cov_term).clamp(min=0))


def frechet_distance(features_a: Features, features_b: Features) -> float:
    """Fréchet distance between Gaussians fitted to two (N, D) feature sets (Heusel et al. 2017).

    The estimate is biased upwards by finite N; compare sets of equal size.
    """
    return frechet_distance_from_stats(gaussian_stats(features_a), gaussian_stats(features_b))
