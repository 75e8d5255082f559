"""Read shard datasets: metadata as polars, samples streamed from the WebDataset tar shards.

`open_dataset` selects rows of `metadata.parquet`, then each DDP rank and DataLoader worker streams
only the shards (or parts of shards) that hold its rows (`synthgen.shards.split` says which), skipping
other members without decoding them. Each shard is checked against the manifest's size and sha256 before
any of its samples is served, unless `verify=False`.
"""
from __future__ import annotations

import io
import itertools
import json
import os
import random
import tarfile
from pathlib import Path
from typing import Any, BinaryIO, Iterable, Iterator

import numpy as np
import pyarrow.parquet as pq
import torch
from PIL import Image

from synthgen.seeds import derive_seed
from synthgen.shards.manifest import MANIFEST, METADATA, ShardStoreError, file_problem, read_manifest
from synthgen.shards.split import RankSplit, Row, batch_count, epoch_order, worker_range
from synthgen.storage import Store, join, open_store

DECODERS = ("torch", "numpy", "pil", "raw")
_HASHES: dict[tuple[str, int, str], str] = {}  # (path or URL, size, version) -> sha256: each shard hashed once


def shard_paths(folder: str | Path) -> list[str]:
    """The shards the manifest lists, as local paths or URLs."""
    return [join(folder, s["name"]) for s in read_manifest(folder)["shards"]]


def load_metadata(folder: str | Path):
    """The dataset's `metadata.parquet` as a polars LazyFrame (one row per sample)."""
    import polars as pl

    read_manifest(folder)
    store = open_store(folder)
    if store.is_local:
        return pl.scan_parquet(store.path(METADATA))
    return pl.read_parquet(store.read_bytes(METADATA)).lazy()


def _open(folder: Path, name: str) -> BinaryIO:
    """The byte stream of one file of a dataset folder: the one place the reader opens data."""
    return open_store(folder).open(name)


def _sha256(store: Store, name: str) -> str:
    """sha256 of an object, cached by (URL, size, version): each shard is hashed once per process."""
    cache_key = (store.url(name), *(store.stat(name) or (-1, "")))
    if cache_key not in _HASHES:
        _HASHES[cache_key] = store.sha256(name)
    return _HASHES[cache_key]


def check_file(folder: str | Path, name: str, size: int | None, sha256: str) -> None:
    """Raise ShardStoreError unless `folder/name` has the size and sha256 the manifest lists."""
    store = open_store(folder)
    problem = file_problem(store, name, size, sha256, digest=lambda n: _sha256(store, n))
    if problem:
        raise ShardStoreError(f"{name} in {folder} {problem}; restore the dataset")


def _selected_rows(folder: Path, manifest: dict, where, verify: bool) -> list[Row]:
    """(shard, key) of every metadata row matching `where`, in manifest order."""
    if verify and "metadata" in manifest:
        check_file(folder, METADATA, None, manifest["metadata"]["sha256"])
    if where is None:
        with _open(folder, METADATA) as f:
            table = pq.read_table(f, columns=["shard", "index", "key"])
    else:
        table = load_metadata(folder).filter(where).select("shard", "index", "key").collect().to_arrow()
    table = table.sort_by([("shard", "ascending"), ("index", "ascending")])
    rows = list(zip(table["shard"].to_pylist(), table["key"].to_pylist()))
    listed = {s["name"] for s in manifest["shards"]}
    unlisted = {shard for shard, _ in rows} - listed
    if unlisted:
        raise ShardStoreError(
            f"{join(folder, METADATA)} names shards that {MANIFEST} does not list: {sorted(unlisted)[:3]}")
    return rows


def resolve_rank_world(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """Explicit arguments, else an initialised torch.distributed, else `RANK`/`WORLD_SIZE`, else (0, 1)."""
    if rank is None or world_size is None:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            found = torch.distributed.get_rank(), torch.distributed.get_world_size()
        else:
            found = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
        rank = found[0] if rank is None else rank
        world_size = found[1] if world_size is None else world_size
    return rank, world_size


def _members(stream: BinaryIO, wanted: set[str], name: str) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {extension: bytes}) of the wanted samples of a tar stream, in order; stops once all are read.

    Members of other samples are skipped without being read into memory.
    """
    left, key, fields = set(wanted), None, {}
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                member_key, _, extension = member.name.partition(".")
                if member_key != key:
                    if fields:
                        yield key, fields
                        left.discard(key)
                    if not left:
                        return
                    key, fields = member_key, {}
                if member_key in left and member.isfile():
                    fields[extension] = tar.extractfile(member).read()
    except tarfile.TarError as e:
        raise ShardStoreError(f"{name} is not a whole tar ({e}): it is truncated or damaged; restore the dataset") from None
    if fields:
        yield key, fields


def _decode_image(data: bytes, how: str):
    if how == "raw":
        return data
    with Image.open(io.BytesIO(data)) as im:
        im = im.convert("RGB")
        if how == "pil":
            im.load()
            return im
        pixels = np.asarray(im)
    return pixels if how == "numpy" else torch.from_numpy(pixels.copy()).permute(2, 0, 1)


def _shared_epoch() -> torch.Tensor:
    """An epoch counter in shared memory: DataLoader workers, persistent ones too, see `set_epoch`."""
    return torch.zeros((), dtype=torch.int64).share_memory_()


class ShardDataset(torch.utils.data.IterableDataset):
    """Iterate samples `{"key", "image", "label", "meta"}` (or batches of them) of one DDP rank.

    See `open_dataset` for the arguments; `len()` is the number of samples (or batches) per rank and epoch.
    """

    def __init__(self, folder: str | Path, where=None, shuffle: bool = False, seed: int = 0,
                 batch_size: int | None = None, decode: str = "torch", buffer: int = 1000,
                 rank: int | None = None, world_size: int | None = None, drop_last: bool = False,
                 verify: bool = True):
        if decode not in DECODERS:
            raise ValueError(f"decode={decode!r}: choose one of {DECODERS}")
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size={batch_size}: give a positive size, or None for single samples")
        self.folder, self.verify = folder, verify
        manifest = read_manifest(self.folder)
        self.entries = {s["name"]: s for s in manifest["shards"]}
        self.rows = _selected_rows(self.folder, manifest, where, verify)
        self.shards = list(dict.fromkeys(shard for shard, _ in self.rows))
        self.split = RankSplit(*resolve_rank_world(rank, world_size), drop_last)
        self.shuffle, self.seed, self._epoch = shuffle, seed, _shared_epoch()
        self.batch_size, self.decode, self.buffer = batch_size, decode, buffer

    @property
    def epoch(self) -> int:
        return int(self._epoch)

    def set_epoch(self, epoch: int) -> None:
        """Shuffle the next pass with (seed, epoch); call it before iterating the DataLoader."""
        self._epoch.fill_(epoch)

    def __len__(self) -> int:
        return batch_count(self.split.count(len(self.rows)), self.batch_size)

    def _my_rows(self, worker: int, workers: int) -> list[Row]:
        block = self.split.block(epoch_order(self.rows, self.shuffle, self.seed, self.epoch))
        return [block[i] for i in worker_range(len(block), self.batch_size or 1, worker, workers)]

    def _read_shard(self, shard: str, keys: list[str]) -> Iterator[dict[str, Any]]:
        """The samples `keys` of one shard, in its order, after checking the shard if `verify`."""
        entry = self.entries[shard]
        if self.verify:
            check_file(self.folder, shard, entry["bytes"], entry["sha256"])
        found = 0
        with _open(self.folder, shard) as stream:
            for key, fields in _members(stream, set(keys), f"{shard} in {self.folder}"):
                found += 1
                yield self._sample(shard, key, fields)
        if found < len(keys):
            raise ShardStoreError(f"{shard} in {self.folder} ends before {len(keys) - found} of its listed "
                                  f"samples: it is truncated; restore the dataset")

    def _sample(self, shard: str, key: str, fields: dict[str, bytes]) -> dict[str, Any]:
        try:
            meta = json.loads(fields["json"])
            image, label = fields[meta["format"]], int(fields["cls"])
        except (KeyError, ValueError) as e:
            raise ShardStoreError(f"{shard} in {self.folder}: sample {key} is incomplete or malformed "
                                  f"(missing or bad {e}); restore the dataset") from None
        if meta.get("label", label) != label:
            raise ShardStoreError(f"{shard} in {self.folder}: sample {key} has label {label} in its .cls but "
                                  f"{meta['label']} in its .json; restore the dataset")
        return {"key": key, "image": _decode_image(image, self.decode), "label": label, "meta": meta}

    def _samples(self, rows: list[Row]) -> Iterator[dict[str, Any]]:
        for shard, run in itertools.groupby(rows, key=lambda row: row[0]):
            yield from self._read_shard(shard, [key for _, key in run])

    def _shuffled(self, samples: Iterable[dict], rng: random.Random) -> Iterator[dict]:
        pool: list[dict] = []
        for s in samples:
            pool.append(s)
            if len(pool) >= self.buffer:
                yield pool.pop(rng.randrange(len(pool)))
        rng.shuffle(pool)
        yield from pool

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        samples = self._samples(self._my_rows(worker, workers))
        if self.shuffle:
            seed = derive_seed(self.seed, "reader/sample_buffer", self.epoch, self.split.rank, worker)
            samples = self._shuffled(samples, random.Random(seed))
        if self.batch_size is None:
            yield from samples
            return
        while batch := list(itertools.islice(samples, self.batch_size)):
            yield collate(batch)


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    images = [s["image"] for s in samples]
    if isinstance(images[0], torch.Tensor):
        images = torch.stack(images)
    return {
        "key": [s["key"] for s in samples],
        "image": images,
        "label": torch.tensor([s["label"] for s in samples]),
        "meta": [s["meta"] for s in samples],
    }


def open_dataset(folder: str | Path, where=None, shuffle: bool = False, seed: int = 0,
                 batch_size: int | None = None, decode: str = "torch", rank: int | None = None,
                 world_size: int | None = None, drop_last: bool = False, verify: bool = True) -> ShardDataset:
    """An iterable over one DDP rank's share of the samples matching the polars expression `where`.

    Use it directly or in `torch.utils.data.DataLoader(ds, batch_size=None, num_workers=N)`; each
    worker reads its own part. `rank` and `world_size` default to the initialised torch.distributed
    group, else the `RANK`/`WORLD_SIZE` environment variables, else a single process; they are fixed
    here, in the main process. Every rank yields `len(ds)` items per epoch: `drop_last=False` pads the
    epoch to a multiple of the world size by repeating samples from its start (as DistributedSampler
    does), `drop_last=True` drops the remainder. `shuffle` reorders shards and samples from
    (`seed`, epoch): call `ds.set_epoch(epoch)` before each epoch. `verify=True` checks each shard's
    size and sha256 against the manifest before serving it (once per process per file version: keep
    `persistent_workers=True` to skip the rehash each epoch) and raises ShardStoreError naming a bad
    shard; `verify=False` skips the check for speed, and damage is then reported only where it breaks
    the tar or a sample.
    """
    return ShardDataset(folder, where=where, shuffle=shuffle, seed=seed, batch_size=batch_size, decode=decode,
                        rank=rank, world_size=world_size, drop_last=drop_last, verify=verify)


def read_arrays(folder: str | Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Every sample in manifest order, on any rank, as (uint8 pixels (N,H,W,3), int64 labels, keys)."""
    samples = list(ShardDataset(folder, decode="numpy", rank=0, world_size=1))
    if not samples:
        raise ValueError(f"{folder} holds no samples")
    pixels = np.stack([s["image"] for s in samples])
    labels = np.array([s["label"] for s in samples], dtype=np.int64)
    return pixels, labels, [s["key"] for s in samples]
