"""DDP-exact reading: every rank reads a disjoint share, as many batches as the others, in every epoch.

The two-rank test starts gloo ranks with `torch.multiprocessing.spawn` (rendezvous through a file, no
port), each reading through `DataLoader`s with (persistent) workers.
"""
import collections
import datetime
import itertools
import json
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from synthgen.shards import open_dataset
from synthgen.shards import reader as shard_reader
from synthgen.shards.split import RankSplit, epoch_order, worker_range
from tests.test_shards import write_dataset

pytestmark = pytest.mark.usefixtures("one_thread")


class WorkerTagged(torch.utils.data.IterableDataset):
    """Each item of the wrapped dataset as (worker id, item)."""

    def __init__(self, ds):
        self.ds = ds

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        for item in self.ds:
            yield info.id if info else 0, item


def keys_of(items) -> list[str]:
    return [k for item in items for k in (item["key"] if isinstance(item["key"], list) else [item["key"]])]


def rank_main(rank: int, root: str) -> None:
    """One gloo rank: read both datasets through DataLoaders with workers; write what it saw."""
    root = Path(root)
    dist.init_process_group("gloo", init_method=f"file://{root / 'rendezvous'}", rank=rank, world_size=2,
                            timeout=datetime.timedelta(seconds=60))
    torch.set_num_threads(1)
    # the rank comes from the process group, resolved here in the main process, not in the workers
    ds = open_dataset(root / "odd", shuffle=True, seed=5, batch_size=4)
    # persistent workers: set_epoch must still reach them
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2, persistent_workers=True,
                                         multiprocessing_context="fork")
    epochs = []
    for epoch in range(2):
        ds.set_epoch(epoch)
        batches = []
        for batch in loader:
            batches.append(batch["key"])
            dist.all_reduce(torch.ones(1))  # a step of DDP: it would hang if ranks ran different counts
        epochs.append(batches)
    grid = open_dataset(root / "four", batch_size=None)
    tagged = torch.utils.data.DataLoader(WorkerTagged(grid), batch_size=None, num_workers=4,
                                         multiprocessing_context="fork")
    per_worker = collections.defaultdict(list)
    for worker, sample in tagged:
        per_worker[worker].append(sample["key"])
    result = {"len": len(ds), "epochs": epochs, "grid_len": len(grid), "grid": per_worker}
    (root / f"rank{rank}.json").write_text(json.dumps(result))
    dist.destroy_process_group()


@pytest.mark.slow
def test_two_gloo_ranks_with_workers_read_every_sample_once_in_equal_steps(tmp_path):
    write_dataset(tmp_path / "odd", n=25, max_count=6)  # 5 shards; 25 samples: one padded per epoch
    write_dataset(tmp_path / "four", n=16, max_count=4)  # 4 shards for 2 ranks x 4 workers
    torch.multiprocessing.spawn(rank_main, args=(str(tmp_path),), nprocs=2, join=True)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]

    rows = shard_reader.ShardDataset(tmp_path / "odd", rank=0, world_size=1).rows
    orders = []
    for epoch in range(2):
        per_rank = [[k for batch in r["epochs"][epoch] for k in batch] for r in ranks]
        assert [len(r["epochs"][epoch]) for r in ranks] == [4, 4] == [r["len"] for r in ranks]  # ceil(13 / 4)
        assert [len(keys) for keys in per_rank] == [13, 13]
        seen = collections.Counter(per_rank[0] + per_rank[1])
        assert set(seen) == {f"img-{i:04d}" for i in range(25)}
        first = epoch_order(rows, True, 5, epoch)[0][1]  # padding repeats the start of the epoch's order
        assert {k for k, n in seen.items() if n > 1} == {first} and seen[first] == 2
        orders.append(per_rank[0] + per_rank[1])
    assert orders[0] != orders[1]

    for r in ranks:
        assert r["grid_len"] == 8 and sorted(len(keys) for keys in r["grid"].values()) == [2, 2, 2, 2]
    grid_keys = [k for r in ranks for keys in r["grid"].values() for k in keys]
    assert sorted(grid_keys) == [f"img-{i:04d}" for i in range(16)]


@pytest.mark.parametrize("drop_last,per_rank,distinct", [(False, 4, 10), (True, 3, 9)])
def test_an_odd_total_pads_or_drops_to_equal_counts(tmp_path, drop_last, per_rank, distinct):
    write_dataset(tmp_path, n=10, max_count=4)
    shares = []
    for rank in range(3):
        ds = open_dataset(tmp_path, shuffle=True, seed=1, rank=rank, world_size=3, drop_last=drop_last)
        shares.append([s["key"] for s in ds])
        assert len(ds) == per_rank == len(shares[-1])
        assert len(open_dataset(tmp_path, batch_size=2, rank=rank, world_size=3, drop_last=drop_last)) == 2
    seen = collections.Counter(k for share in shares for k in share)
    assert len(seen) == distinct and sum(seen.values()) == 3 * per_rank
    assert all(len(set(share)) == len(share) for share in shares)


def test_set_epoch_changes_the_order_but_not_the_set(tmp_path):
    write_dataset(tmp_path, n=12, max_count=3)
    ds = open_dataset(tmp_path, shuffle=True, seed=2, rank=1, world_size=2)
    orders = []
    for epoch in (0, 1, 0):
        ds.set_epoch(epoch)
        orders.append([s["key"] for s in ds])
    assert orders[0] == orders[2] and orders[0] != orders[1]
    whole = open_dataset(tmp_path, shuffle=True, seed=2, rank=0, world_size=1)
    epochs = []
    for epoch in (0, 1):
        whole.set_epoch(epoch)
        epochs.append([s["key"] for s in whole])
    assert epochs[0] != epochs[1] and sorted(epochs[0]) == sorted(epochs[1])


def test_rank_and_world_come_from_arguments_then_the_environment(tmp_path, monkeypatch):
    write_dataset(tmp_path, n=6, max_count=6)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "3")
    ds = open_dataset(tmp_path)
    assert (ds.split.rank, ds.split.world) == (1, 3) and [s["key"] for s in ds] == ["img-0002", "img-0003"]
    assert (open_dataset(tmp_path, rank=0, world_size=1).split.world) == 1
    with pytest.raises(ValueError, match="rank 3 is outside world size 3"):
        open_dataset(tmp_path, rank=3)


def test_a_rank_decodes_only_its_part_of_a_shard(tmp_path, monkeypatch):
    write_dataset(tmp_path, n=12, max_count=12)
    decoded = []
    real = shard_reader._decode_image
    monkeypatch.setattr(shard_reader, "_decode_image", lambda data, how: decoded.append(1) or real(data, how))
    keys = [s["key"] for s in open_dataset(tmp_path, rank=1, world_size=3)]
    assert keys == [f"img-{i:04d}" for i in range(4, 8)] and len(decoded) == 4


@pytest.mark.parametrize("total,world,workers,batch,drop_last", [
    (16, 2, 4, None, False), (25, 2, 2, 4, False), (10, 3, 2, 3, True), (10, 3, 4, None, False), (2, 4, 2, None, False),
])
def test_the_split_is_disjoint_complete_and_equal(total, world, workers, batch, drop_last):
    rows = [(f"s{i // 4}", f"k{i:03d}") for i in range(total)]
    order = epoch_order(rows, True, 0, 3)
    assert sorted(order) == rows
    counts, seen = set(), []
    for rank in range(world):
        block = RankSplit(rank, world, drop_last).block(order)
        parts = [[block[i] for i in worker_range(len(block), batch or 1, w, workers)] for w in range(workers)]
        assert list(itertools.chain(*parts)) == block
        counts.add(sum(-(-len(p) // (batch or 1)) for p in parts))
        seen += block
    assert len(counts) == 1  # every rank yields as many items
    expected = total // world * world if drop_last else -(-total // world) * world
    assert len(seen) == expected and len(set(seen)) == min(total, expected)


def test_every_rank_and_worker_of_a_four_shard_grid_reads_something():
    rows = [(f"s{i // 4}", f"k{i:02d}") for i in range(16)]
    for rank in range(2):
        block = RankSplit(rank, 2).block(epoch_order(rows, True, 0, 0))
        assert all(len(worker_range(len(block), 1, w, 4)) == 2 for w in range(4))
