"""Read shard datasets: metadata as polars, samples through the `webdataset` library.

`open_dataset` opens only the shards that hold matching rows, and splits those shards across
DataLoader workers and DDP ranks, so each sample is seen once per epoch.
"""
from __future__ import annotations

import io
import json
import random
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import webdataset as wds
from PIL import Image

from synthgen.shards.manifest import METADATA, ShardStoreError, read_manifest
from synthgen.storage import join, open_store

DECODERS = ("torch", "numpy", "pil", "raw")


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


def shard_streams(folder: str | Path, names: list[str]) -> Iterator[dict[str, Any]]:
    """Open each named shard of `folder` in turn, as webdataset's tar expander expects (`url`, `stream`)."""
    store = open_store(folder)
    for name in names:
        try:
            stream = store.open(name)
        except FileNotFoundError:
            raise ShardStoreError(f"{store.url(name)} is listed in the manifest but missing") from None
        with stream:
            yield {"url": store.url(name), "stream": stream}


def _select(folder: Path, where) -> tuple[list[str], set[str] | None]:
    """Shard names to open, and the keys to keep (None: all keys of those shards)."""
    if where is None:
        return [s["name"] for s in read_manifest(folder)["shards"]], None
    rows = load_metadata(folder).filter(where).select("key", "shard").collect()
    shards = sorted(set(rows["shard"].to_list()))
    return shards, set(rows["key"].to_list())


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


def _partition(items: list, rank: int, world: int, worker: int, workers: int) -> list:
    """Every (rank, worker) pair takes its own stride of the list."""
    return items[rank * workers + worker:: world * workers]


def _rank_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class ShardDataset(torch.utils.data.IterableDataset):
    """Iterate samples `{"key", "image", "label", "meta"}` (or batches of them) from chosen shards."""

    def __init__(self, folder: str | Path, where=None, shuffle: bool = False, seed: int = 0,
                 batch_size: int | None = None, decode: str = "torch", buffer: int = 1000):
        if decode not in DECODERS:
            raise ValueError(f"decode={decode!r}: choose one of {DECODERS}")
        self.folder = folder
        self.shards, self.keys = _select(self.folder, where)
        self.shuffle, self.seed, self.epoch = shuffle, seed, 0
        self.batch_size, self.decode, self.buffer = batch_size, decode, buffer

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _my_shards(self) -> list[str]:
        shards = list(self.shards)
        if self.shuffle:
            random.Random(f"{self.seed}-{self.epoch}").shuffle(shards)
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        return _partition(shards, *_rank_world(), worker, workers)

    def _samples(self) -> Iterator[dict[str, Any]]:
        pipeline = wds.tariterators.group_by_keys(
            wds.tariterators.tar_file_expander(shard_streams(self.folder, self._my_shards())))
        for raw in pipeline:
            if self.keys is not None and raw["__key__"] not in self.keys:
                continue
            meta = json.loads(raw["json"])
            yield {
                "key": raw["__key__"],
                "image": _decode_image(raw[meta["format"]], self.decode),
                "label": int(raw["cls"]),
                "meta": meta,
            }

    def _shuffled(self, samples: Iterator[dict]) -> Iterator[dict]:
        rng, pool = random.Random(f"{self.seed}-{self.epoch}-samples"), []
        for s in samples:
            pool.append(s)
            if len(pool) >= self.buffer:
                yield pool.pop(rng.randrange(len(pool)))
        rng.shuffle(pool)
        yield from pool

    def __iter__(self) -> Iterator[dict[str, Any]]:
        samples = self._samples()
        if self.shuffle:
            samples = self._shuffled(samples)
        if self.batch_size is None:
            yield from samples
            return
        batch: list[dict] = []
        for s in samples:
            batch.append(s)
            if len(batch) == self.batch_size:
                yield collate(batch)
                batch = []
        if batch:
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
                 batch_size: int | None = None, decode: str = "torch") -> ShardDataset:
    """An iterable over the samples of a shard dataset matching the polars expression `where`.

    Works directly or inside `torch.utils.data.DataLoader(ds, batch_size=None, num_workers=N)`.
    """
    return ShardDataset(folder, where=where, shuffle=shuffle, seed=seed, batch_size=batch_size, decode=decode)


def read_arrays(folder: str | Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Every sample in manifest order as (uint8 pixels (N,H,W,3), int64 labels, keys)."""
    samples = list(ShardDataset(folder, decode="numpy"))
    if not samples:
        raise ValueError(f"{folder} holds no samples")
    pixels = np.stack([s["image"] for s in samples])
    labels = np.array([s["label"] for s in samples], dtype=np.int64)
    return pixels, labels, [s["key"] for s in samples]
