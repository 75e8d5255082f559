"""MNIST-style IDX files read from a local folder with numpy (never downloaded).

IDX format (LeCun et al.): two zero bytes, a dtype code (0x08 = unsigned byte), the number of
dimensions, one big-endian uint32 per dimension, then the data in C order.
"""
from __future__ import annotations

import gzip
from pathlib import Path
from typing import Iterator

import numpy as np

from synthgen.data.labels import integer_labels
from synthgen.data.sources import DataSourceError, LocalFilesWithTestSplit, Source, SourceItem, SourceSpec, array_items

IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions (N, rows, cols)
LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension (N,)
CLASS_NAMES = [str(d) for d in range(10)]
SPLITS = ("train", "t10k")  # file name prefixes: train-images-idx3-ubyte, t10k-images-idx3-ubyte


class MnistOptions(LocalFilesWithTestSplit):
    layout = "the folder holding train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz]"


def parse_idx(data: bytes, expected_magic: int, name: str) -> np.ndarray:
    """The array stored in IDX bytes; raises DataSourceError on a wrong magic number or size."""
    if len(data) < 4:
        raise DataSourceError(f"{name} is not an IDX file: only {len(data)} bytes")
    magic = int.from_bytes(data[:4], "big")
    if magic != expected_magic:
        raise DataSourceError(f"{name} has IDX magic 0x{magic:08x}, expected 0x{expected_magic:08x}: wrong or corrupt file")
    ndim = data[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    if len(data) != header + int(np.prod(shape)):
        raise DataSourceError(f"{name} holds {len(data) - header} data bytes, its header {shape} needs {int(np.prod(shape))}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def find_idx_file(folder: Path, stem: str) -> Path:
    """`stem` or `stem.gz` inside `folder` (or its `raw/` subfolder, torchvision's layout)."""
    for candidate in (folder / stem, folder / f"{stem}.gz", folder / "raw" / stem, folder / "raw" / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    raise DataSourceError(f"{stem}[.gz] not found in {folder}: put {MnistOptions.layout} there")


def read_idx(path: Path, expected_magic: int) -> np.ndarray:
    try:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataSourceError(f"cannot read {path}: {e}") from None
    return parse_idx(data, expected_magic, str(path))


def load_mnist_split(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(N, 28, 28) uint8 images and (N,) labels of one split ('train' or 't10k')."""
    images = read_idx(find_idx_file(folder, f"{split}-images-idx3-ubyte"), IMAGES_MAGIC)
    labels_file = find_idx_file(folder, f"{split}-labels-idx1-ubyte")
    labels = read_idx(labels_file, LABELS_MAGIC)
    if len(images) != len(labels):
        raise DataSourceError(f"{folder}: {split} has {len(images)} images but {len(labels)} labels")
    return images, integer_labels(labels, len(CLASS_NAMES), str(labels_file))


def mnist_source(options: MnistOptions, resolution: int) -> Source:
    """The train split (plus t10k with `data.include_test`); labels 0-9."""
    folder = Path(options.path)
    if not folder.is_dir():
        raise DataSourceError(f"data.path {folder} is not a folder: put {MnistOptions.layout} there")
    splits = {split: load_mnist_split(folder, split) for split in SPLITS[: 2 if options.include_test else 1]}

    def items() -> Iterator[SourceItem]:
        for split, (images, labels) in splits.items():
            yield from array_items(f"mnist-{split}", images, labels, f"{folder}/{split}")

    return Source("mnist", list(CLASS_NAMES), items)


SOURCE = SourceSpec("mnist", MnistOptions, mnist_source)
