"""Which samples each DDP rank and DataLoader worker reads in an epoch: disjoint, and as many per rank.

An epoch's order is the selected samples shard by shard (each shard in its tar order), the shards
shuffled from (seed, epoch) when shuffling. Ranks take equal contiguous blocks of that order, with the
policy of `torch.utils.data.DistributedSampler`: `drop_last=False` pads the order to a multiple of the
world size by repeating samples from its start, `drop_last=True` drops its tail. So a rank reads a run
of whole shards plus at most two partial ones, whatever the number of shards. A rank's block is cut into
units (batches of `batch_size`, or single samples) and each DataLoader worker takes a contiguous run of
whole units: a rank yields ceil(samples / batch_size) batches whatever the number of workers, and only
its last batch can be short.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Sequence, TypeVar

from synthgen.seeds import derive_seed

Row = tuple[str, str]  # (shard name, sample key)
T = TypeVar("T")


def epoch_order(rows: Sequence[Row], shuffle: bool, seed: int, epoch: int) -> list[Row]:
    """`rows` (in manifest order) regrouped shard by shard, the shards shuffled from (seed, epoch)."""
    by_shard: dict[str, list[Row]] = {}
    for row in rows:
        by_shard.setdefault(row[0], []).append(row)
    shards = list(by_shard)
    if shuffle:
        random.Random(derive_seed(seed, "reader/shard_order", epoch)).shuffle(shards)
    return [row for shard in shards for row in by_shard[shard]]


@dataclass(frozen=True)
class RankSplit:
    """One DDP rank's share of every epoch's order."""

    rank: int = 0
    world: int = 1
    drop_last: bool = False  # True: drop the order's tail; False: pad it from its start

    def __post_init__(self):
        if not 0 <= self.rank < self.world:
            raise ValueError(f"rank {self.rank} is outside world size {self.world}")

    def count(self, total: int) -> int:
        """Samples each rank reads per epoch when `total` are selected."""
        return total // self.world if self.drop_last else -(-total // self.world)

    def block(self, order: Sequence[T]) -> list[T]:
        """This rank's contiguous block of the epoch's order, padded from its start where needed."""
        n = self.count(len(order))
        return [order[i % len(order)] for i in range(self.rank * n, (self.rank + 1) * n)]


def worker_range(count: int, unit: int, worker: int, workers: int) -> range:
    """The positions in a rank's block of `count` samples that `worker` reads: a run of whole units."""
    units = -(-count // unit)
    first, last = units * worker // workers, units * (worker + 1) // workers
    return range(first * unit, min(last * unit, count))


def batch_count(samples: int, batch_size: int | None) -> int:
    """Items a rank yields: samples, or batches of `batch_size` (the last one may be short)."""
    return samples if batch_size is None else -(-samples // batch_size)
