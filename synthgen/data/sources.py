"""What every dataset source yields, and the registry that picks one by `data.source`.

A source knows its class names and iterates `SourceItem`s (an undecoded image with its label and
origin) or `Rejection`s (an input it could not turn into an item, with the reason). Sources never
download anything and never raise for one bad input: only a missing or unusable dataset as a
whole is a `DataSourceError`.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import numpy as np

from synthgen.config.data import DataConfig
from synthgen.errors import SynthgenError


class DataSourceError(SynthgenError):
    """The dataset as a whole is missing or unreadable; the message says where the files go."""


@dataclass(frozen=True)
class SourceItem:
    """One input image, not yet decoded."""

    key: str  # safe sample key: A-Z a-z 0-9 _ - only, unique within the source
    payload: bytes | np.ndarray  # encoded file bytes, or uint8 pixels (H, W) or (H, W, C)
    label: int  # index into the source's class names
    origin: str  # where it came from: a file path, "shard.tar:key", "data_batch_1[42]"


@dataclass(frozen=True)
class Rejection:
    """An input that was not turned into a sample, and why (`reason` is a short category)."""

    key: str
    origin: str
    reason: str
    detail: str = ""


@dataclass(frozen=True)
class Source:
    """A named dataset: its class names and a re-iterable stream of items and rejections."""

    name: str
    class_names: list[str]
    iterate: Callable[[], Iterator[SourceItem | Rejection]]

    def __iter__(self) -> Iterator[SourceItem | Rejection]:
        return self.iterate()


def key_from_path(raw: str, used: set[str]) -> str:
    """A safe key for `raw` (a relative path, say) not yet in `used`; a clash gets a hash suffix."""
    from synthgen.shards.keys import sanitize_key  # here: the shards package imports torch

    try:
        base = key = sanitize_key(raw)
    except ValueError:  # nothing of `raw` survives sanitising (e.g. an all-Cyrillic name)
        base = key = f"k_{hashlib.sha256(raw.encode()).hexdigest()[:16]}"
    attempt = 0
    while key in used:
        attempt += 1
        digest = hashlib.sha256(f"{raw}#{attempt}".encode()).hexdigest()[:10]
        key = sanitize_key(f"{base}_{digest}")
    used.add(key)
    return key


def array_items(prefix: str, pixels: np.ndarray, labels: Iterable[int], origin: str) -> Iterator[SourceItem]:
    """Items for in-memory uint8 images: keys `{prefix}-{index:06d}`, origins `{origin}[index]`."""
    for i, (image, label) in enumerate(zip(pixels, labels)):
        yield SourceItem(f"{prefix}-{i:06d}", image, int(label), f"{origin}[{i}]")


def _openers() -> dict[str, Callable[[DataConfig], Source]]:
    # Imported here: each module imports this one for the item types.
    from synthgen.data import cifar10, digits, imagefolder, mnist, shapes, webdataset_source

    return {
        "shapes": shapes.shapes_source,
        "digits": digits.digits_source,
        "imagefolder": imagefolder.imagefolder_source,
        "webdataset": webdataset_source.webdataset_source,
        "mnist": mnist.mnist_source,
        "cifar10": cifar10.cifar10_source,
    }


def open_source(cfg: DataConfig) -> Source:
    """The source `cfg.source` names. Raises DataSourceError if its files are missing or unusable."""
    return _openers()[cfg.source](cfg)
