"""CIFAR-10 "python version" batches read with a restricted unpickler (never `pickle.load`).

The batches are pickled dicts of bytes, strings, lists, ints and one numpy array. Unpickling can
call any importable function a file names, so `SafeUnpickler.find_class` resolves exactly these
globals and refuses every other one:

- `numpy.core.multiarray._reconstruct` (and `numpy._core.multiarray._reconstruct`, its numpy 2 name),
- `numpy.ndarray`,
- `numpy.dtype`.

These build an array from its shape, dtype and raw bytes and call nothing else. They are looked
up in a fixed table; no module named by the file is ever imported.
"""
from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from synthgen.data.labels import check_class_count, integer_labels
from synthgen.data.sources import DataSourceError, LocalFilesWithTestSplit, Source, SourceItem, SourceSpec, array_items

try:  # numpy >= 2 keeps the implementation in numpy._core
    from numpy._core.multiarray import _reconstruct
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct

ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
DEFAULT_CLASS_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


class Cifar10Options(LocalFilesWithTestSplit):
    layout = "the cifar-10-batches-py folder holding data_batch_1..5 (and batches.meta, test_batch)"


class UnsafePickleError(DataSourceError):
    """A pickle asked for a global outside ALLOWED_GLOBALS."""


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that can build numpy arrays and plain containers, and nothing else."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(f"refusing to unpickle global {module}.{name}: only numpy arrays are allowed") from None


def safe_unpickle(data: bytes) -> Any:
    """Unpickle with SafeUnpickler; Python 2 strings come back as bytes, as CIFAR's were written."""
    return SafeUnpickler(io.BytesIO(data), encoding="bytes").load()


def _text_keys(batch: dict) -> dict[str, Any]:
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in batch.items()}


def load_batch(path: Path, num_classes: int = len(DEFAULT_CLASS_NAMES)) -> tuple[np.ndarray, np.ndarray]:
    """One batch file as (N, 32, 32, 3) uint8 pixels and (N,) int64 labels, each in 0..num_classes-1."""
    try:
        batch = safe_unpickle(path.read_bytes())
    except UnsafePickleError as e:
        raise UnsafePickleError(f"{path}: {e}") from None
    except Exception as e:  # a truncated or foreign file fails in many ways inside pickle
        raise DataSourceError(f"{path} is not a CIFAR-10 python batch: {type(e).__name__}: {e}") from None
    batch = _text_keys(batch) if isinstance(batch, dict) else {}
    data, labels = batch.get("data"), batch.get("labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataSourceError(f"{path}: expected 'data' as a uint8 array of shape (N, 3072)")
    if labels is None or len(labels) != len(data):
        raise DataSourceError(f"{path}: expected one label per image")
    pixels = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # stored as channel planes
    return np.ascontiguousarray(pixels), integer_labels(labels, num_classes, f"{path}: labels")


def load_class_names(folder: Path) -> list[str]:
    """`label_names` from batches.meta, or the standard ten names if the file is absent."""
    meta = folder / "batches.meta"
    if not meta.is_file():
        return list(DEFAULT_CLASS_NAMES)
    try:
        names = _text_keys(safe_unpickle(meta.read_bytes()))["label_names"]
    except UnsafePickleError as e:
        raise UnsafePickleError(f"{meta}: {e}") from None
    except Exception as e:
        raise DataSourceError(f"{meta} is not a CIFAR-10 meta file: {type(e).__name__}: {e}") from None
    if not isinstance(names, list) or not all(isinstance(n, (bytes, str)) for n in names):
        raise DataSourceError(f"{meta}: label_names must be a list of class names")
    return [n.decode("utf-8", errors="replace") if isinstance(n, bytes) else n for n in names]


def batch_folder(path: Path) -> Path:
    """`path` itself, or the `cifar-10-batches-py` folder inside it (where the archive unpacks)."""
    nested = path / "cifar-10-batches-py"
    return nested if nested.is_dir() else path


def cifar10_source(options: Cifar10Options, resolution: int) -> Source:
    """data_batch_1..5 (plus test_batch with `data.include_test`), in that order; all must be present."""
    folder = batch_folder(Path(options.path))
    wanted = TRAIN_BATCHES + ((TEST_BATCH,) if options.include_test else ())
    missing = [name for name in wanted if not (folder / name).is_file()]
    if missing:
        raise DataSourceError(f"{', '.join(missing)} not found in {folder}: put {Cifar10Options.layout} there")
    class_names = load_class_names(folder)
    check_class_count(len(class_names), options.max_classes, str(folder / "batches.meta"))
    batches = {name: load_batch(folder / name, len(class_names)) for name in wanted}

    def items() -> Iterator[SourceItem]:
        for name, (pixels, labels) in batches.items():
            yield from array_items(name, pixels, labels, str(folder / name))

    return Source("cifar10", class_names, items)


SOURCE = SourceSpec("cifar10", Cifar10Options, cifar10_source)
