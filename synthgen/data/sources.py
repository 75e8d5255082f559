"""What every dataset source yields, and how a source declares itself.

A source module declares one `SourceSpec`: its name, its options (a params model whose fields sit
under `data:`) and its reader; `synthgen.data.catalog` lists the specs. A source knows its class names and iterates `SourceItem`s (an undecoded image with its label and
origin) or `Rejection`s (an input it could not turn into an item, with the reason). Sources never
download anything and never raise for one bad input: only a missing or unusable dataset as a
whole is a `DataSourceError`.
"""
from __future__ import annotations

import glob
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ClassVar, Generic, Iterable, Iterator, TypeVar

import numpy as np
from pydantic import Field

from synthgen.config.base import Section
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


def is_glob(path: str) -> bool:
    return any(c in path for c in "*?[")


def path_exists(path: str) -> bool:
    """A file or folder exists at `path`, or the glob `path` matches at least one file."""
    return bool(glob.glob(path)) if is_glob(path) else Path(path).exists()


class LocalFiles(Section):
    """Options of a source that reads local files. `data.path` must exist when the config is loaded,
    so a missing dataset is a config error before any work starts."""

    layout: ClassVar[str] = "its files"  # what `data.path` must hold, said in the error when it does not

    path: str | None = None  # local input of the sources that read files (relative to the working directory); never downloaded
    max_classes: int = Field(100_000, ge=1, le=100_000)  # a source with more classes, or an integer label at or above this, is refused (the UNet's limit)


class LocalFilesWithTestSplit(LocalFiles):
    """Options of a local dataset that ships a separate test split."""

    include_test: bool = False  # mnist/cifar10: also read the t10k / test_batch files


Options = TypeVar("Options", bound=Section)


@dataclass(frozen=True)
class SourceSpec(Generic[Options]):
    """A data source as `data.source` names it: its options model and its reader."""

    name: str
    options: type[Options]  # its fields are keys of the `data` params section
    read: Callable[[Options, int], Source]  # (options, data.resolution) -> the source; raises DataSourceError
