"""Reading what the evaluate stage scores: the prepared real splits and a synthetic shard dataset."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from synthgen.errors import SynthgenError
from synthgen.shards import ShardStoreError, read_arrays, verify_dataset
from synthgen.shards.manifest import METADATA
from synthgen.stages.layout import PreparedLayout


@dataclass(frozen=True)
class LabelledImages:
    pixels: np.ndarray  # (N, H, W, 3) uint8
    labels: np.ndarray  # (N,) int64; for synthetic images the requested class
    keys: list[str]

    def __len__(self) -> int:
        return len(self.keys)

    def take(self, indices: np.ndarray) -> "LabelledImages":
        return LabelledImages(self.pixels[indices], self.labels[indices], [self.keys[i] for i in indices])

    def __add__(self, other: "LabelledImages") -> "LabelledImages":
        return LabelledImages(np.concatenate([self.pixels, other.pixels]), np.concatenate([self.labels, other.labels]),
                              self.keys + other.keys)

    def repeated(self, count: int) -> "LabelledImages":
        """The images repeated whole until there are at least `count` (a training batch needs that many)."""
        if len(self) >= count:
            return self
        return self.take(np.tile(np.arange(len(self)), -(-count // len(self))))


@dataclass(frozen=True)
class RealData:
    train: LabelledImages
    val: LabelledImages
    class_names: list[str]


def read_split(folder: Path) -> LabelledImages:
    """All samples of one shard dataset; a missing or empty dataset is one clear error."""
    try:
        pixels, labels, keys = read_arrays(folder)
    except (ShardStoreError, ValueError) as e:
        raise SynthgenError(f"cannot read {folder}: {e}") from None
    return LabelledImages(pixels, labels, keys)


def load_prepared(prepared_dir: str | Path) -> RealData:
    """The prepare stage's train and val splits and its class names (classes.json)."""
    prepared = PreparedLayout(Path(prepared_dir))
    if not prepared.classes.is_file():
        raise SynthgenError(f"{prepared.classes} is missing; run the prepare stage first")
    return RealData(read_split(prepared.split("train")), read_split(prepared.split("val")),
                    prepared.class_names())


def check_class_names(folder: Path, class_names: list[str]) -> None:
    """Every metadata row's class_name must be the prepared name of its label."""
    table = pq.read_table(folder / METADATA, columns=["key", "label", "class_name"])
    labels = table.column("label").to_numpy()
    names = np.asarray(table.column("class_name").to_pylist(), dtype=object)
    out_of_range = np.flatnonzero((labels < 0) | (labels >= len(class_names)))
    if len(out_of_range):
        i = out_of_range[0]
        raise SynthgenError(f"{folder}: sample {table.column('key')[i]} has label {labels[i]}, but the real data has "
                            f"{len(class_names)} classes")
    misnamed = np.flatnonzero(names != np.asarray(class_names, dtype=object)[labels])
    if len(misnamed):
        i = misnamed[0]
        raise SynthgenError(f"{folder}: sample {table.column('key')[i]} has label {labels[i]} named {names[i]!r}, but the "
                            f"real data calls it {class_names[labels[i]]!r}; generate with a model trained on this dataset")


def load_synthetic(synthetic_dir: str | Path, class_names: list[str]) -> LabelledImages:
    """A synthetic shard dataset whose shards match their checksums and whose labels match the real classes."""
    synthetic_dir = Path(synthetic_dir)
    try:
        corrupt = verify_dataset(synthetic_dir)
    except ShardStoreError as e:
        raise SynthgenError(str(e)) from None
    if corrupt:
        raise SynthgenError(f"{synthetic_dir}: shards {corrupt} are missing or fail their sha256; regenerate them")
    check_class_names(synthetic_dir, class_names)
    return read_split(synthetic_dir)
