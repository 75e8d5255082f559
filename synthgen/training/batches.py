"""Batches of in-memory tensors in an order that is a pure function of (seed, step).

Each epoch is a fresh permutation drawn from a generator seeded by (seed, epoch), so a resumed run
sees exactly the batches the uninterrupted run would have seen, with no sampler state to save.
The last incomplete batch of an epoch is dropped. Under DDP the global batch is cut into
world_size equal slices and each rank takes its own.
"""
from __future__ import annotations

from typing import Mapping

import torch

from synthgen.errors import SynthgenError
from synthgen.seeds import derive_seed


class BatchOrder:
    """The indices rank `rank` trains on at each step, for `count` samples and a global batch."""

    def __init__(self, count: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1):
        if batch_size > count:
            raise SynthgenError(f"batch_size={batch_size} is larger than the {count} training samples; lower it")
        if batch_size % world_size:
            raise SynthgenError(f"batch_size={batch_size} must be divisible by the {world_size} processes")
        self.count, self.batch_size, self.seed = count, batch_size, seed
        self.local = batch_size // world_size
        self.offset = rank * self.local
        self.steps_per_epoch = count // batch_size
        self._epoch, self._perm = -1, torch.empty(0, dtype=torch.long)

    def permutation(self, epoch: int) -> torch.Tensor:
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(derive_seed(self.seed, "train/batch_order", epoch))
            self._epoch, self._perm = epoch, torch.randperm(self.count, generator=g)
        return self._perm

    def indices(self, step: int) -> torch.Tensor:
        epoch, i = divmod(step, self.steps_per_epoch)
        start = i * self.batch_size + self.offset
        return self.permutation(epoch)[start : start + self.local]


def take_batch(data: Mapping[str, torch.Tensor], indices: torch.Tensor, device: torch.device,
               channels_last: bool = False) -> dict[str, torch.Tensor]:
    """Rows `indices` of every tensor, moved to `device` (4-D tensors optionally channels_last)."""
    batch = {}
    for key, tensor in data.items():
        rows = tensor[indices].to(device, non_blocking=True)
        if channels_last and rows.ndim == 4:
            rows = rows.contiguous(memory_format=torch.channels_last)
        batch[key] = rows
    return batch
