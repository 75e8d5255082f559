"""Kernel Inception Distance: unbiased MMD^2 with a cubic polynomial kernel, over random subsets."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from synthgen.metrics.frechet import Features, as_float64


@dataclass(frozen=True)
class KID:
    """Mean and standard deviation of MMD^2 over subsets, and the subset size actually used."""

    mean: float
    std: float
    subset_size: int


def polynomial_kernel(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Binkowski et al. 2018, sec. 3: k(x, y) = (x . y / d + 1)^3, d the feature dimension."""
    return (x @ y.T / x.shape[1] + 1) ** 3


def mmd2_unbiased(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Unbiased MMD^2 (Gretton et al. 2012, eq. 3): kernel means without the diagonal terms."""
    m, n = len(x), len(y)
    k_xx, k_yy = polynomial_kernel(x, x), polynomial_kernel(y, y)
    within_x = (k_xx.sum() - k_xx.diagonal().sum()) / (m * (m - 1))
    within_y = (k_yy.sum() - k_yy.diagonal().sum()) / (n * (n - 1))
    return within_x + within_y - 2 * polynomial_kernel(x, y).mean()


def kernel_inception_distance(
    features_a: Features,
    features_b: Features,
    num_subsets: int,
    subset_size: int,
    generator: torch.Generator,
) -> KID:
    """KID (Binkowski et al. 2018): unbiased MMD^2 averaged over `num_subsets` random subsets.

    Each subset draws `subset_size` rows (capped at the smaller set) without replacement from
    each set. Unbiased: its expectation is 0 when both sets come from the same distribution,
    so small negative values are expected noise.
    """
    a, b = as_float64(features_a), as_float64(features_b)
    size = min(subset_size, len(a), len(b))
    assert size >= 2, f"KID needs at least 2 samples in each set, got {len(a)} and {len(b)}"
    values = torch.stack([
        mmd2_unbiased(a[torch.randperm(len(a), generator=generator)[:size]],
                      b[torch.randperm(len(b), generator=generator)[:size]])
        for _ in range(num_subsets)
    ])
    std = values.std().item() if num_subsets > 1 else 0.0
    return KID(values.mean().item(), std, size)
