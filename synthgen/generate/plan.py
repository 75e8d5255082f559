"""The sampling plan: a pure function of the params that fixes every sample's label and seed.

Because each sample's label and noise seed depend only on `(sample.seed, global index)`, the bytes
of an image do not depend on batch size, worker count or the order in which shards run.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from synthgen.seeds import derive_seed
from synthgen.shards.keys import sample_key, shard_name
from synthgen.stages.layout import SyntheticLayout


def apportion(total: int, weights: np.ndarray) -> np.ndarray:
    """Split `total` into integers proportional to `weights` (largest remainder, ties to lower index)."""
    share = total * weights / weights.sum()
    counts = np.floor(share).astype(np.int64)
    remainder_order = np.argsort(-(share - counts), kind="stable")
    counts[remainder_order[: total - counts.sum()]] += 1
    return counts


def interleave(class_counts: np.ndarray) -> np.ndarray:
    """A label sequence in which every class is spread evenly, so any contiguous block of n labels
    holds each class's share of n up to rounding (position of item k of class c: (k + 1/2) / count_c)."""
    positions = np.concatenate([(np.arange(n) + 0.5) / n for n in class_counts if n > 0])
    labels = np.concatenate([np.full(n, c) for c, n in enumerate(class_counts) if n > 0])
    return labels[np.argsort(positions, kind="stable")]


@dataclass(frozen=True)
class ShardPlan:
    index: int
    name: str
    sample_indices: np.ndarray  # global sample indices, in shard order
    labels: np.ndarray  # requested class of each sample
    seeds: tuple[int, ...]  # each sample's noise seed

    def keys(self, prefix: str) -> list[str]:
        return [sample_key(prefix, int(i)) for i in self.sample_indices]


@dataclass(frozen=True)
class SamplingPlan:
    class_counts: tuple[int, ...]  # images per class over the whole dataset
    images_per_shard: int
    seed: int
    prefix: str = SyntheticLayout.PREFIX

    @property
    def num_images(self) -> int:
        return sum(self.class_counts)

    @property
    def num_shards(self) -> int:
        return -(-self.num_images // self.images_per_shard)

    @cached_property
    def labels(self) -> np.ndarray:
        return interleave(np.asarray(self.class_counts))

    def shard(self, index: int) -> ShardPlan:
        if not 0 <= index < self.num_shards:
            raise IndexError(f"shard {index} is outside 0..{self.num_shards - 1}")
        start = index * self.images_per_shard
        indices = np.arange(start, min(start + self.images_per_shard, self.num_images))
        return ShardPlan(
            index=index,
            name=shard_name(self.prefix, index),
            sample_indices=indices,
            labels=self.labels[indices],
            seeds=tuple(derive_seed(self.seed, "sample/seed", int(i)) for i in indices),
        )

    def shards(self) -> list[ShardPlan]:
        return [self.shard(i) for i in range(self.num_shards)]


def class_counts_for(num_images: int, class_names: list[str], mix: str,
                     weights: dict[str, float] | None = None, counts: dict[str, int] | None = None) -> list[int]:
    """Images per class for a mix of `uniform`, `weights` (name -> weight) or `counts` (name -> count)."""
    by_name = weights if mix == "weights" else counts if mix == "counts" else None
    if by_name is not None:
        unknown = sorted(set(by_name) - set(class_names))
        if unknown:
            raise ValueError(f"sample.class_{mix} names unknown classes {unknown}; known: {class_names}")
    if mix == "counts":
        return [int(counts.get(name, 0)) for name in class_names]
    w = np.ones(len(class_names)) if mix == "uniform" else np.array([weights.get(n, 0.0) for n in class_names])
    if w.sum() <= 0:
        raise ValueError("sample.class_weights must give at least one class a positive weight")
    return apportion(num_images, w).tolist()
