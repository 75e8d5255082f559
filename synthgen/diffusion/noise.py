"""Gaussian noise for samplers, from one generator or from one generator per batch row.

Per-row generators make a sample's noise independent of the batch it runs in: the property that
lets the sample stage promise identical bytes for any batch size, worker count or shard order.
"""
from __future__ import annotations

import torch


class SampleGenerators:
    """One CPU `torch.Generator` per batch row; rows are drawn on the CPU, then moved to `device`."""

    def __init__(self, seeds: list[int], device: torch.device | str = "cpu"):
        self.generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
        self.device = torch.device(device)

    def __len__(self) -> int:
        return len(self.generators)

    def randn(self, shape: torch.Size, dtype: torch.dtype) -> torch.Tensor:
        if shape[0] != len(self.generators):
            raise ValueError(f"{len(self.generators)} per-sample generators for a batch of {shape[0]}")
        rows = [torch.randn(shape[1:], generator=g) for g in self.generators]
        return torch.stack(rows).to(self.device, dtype)


Generator = torch.Generator | SampleGenerators


def gaussian_like(x: torch.Tensor, generator: Generator | None) -> torch.Tensor:
    """z ~ N(0, I) with x's shape, device and dtype."""
    if isinstance(generator, SampleGenerators):
        return generator.randn(x.shape, x.dtype)
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
