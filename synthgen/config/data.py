"""Params for the prepare stage: where the images come from and how they are normalised.

Sources that read local files (imagefolder, webdataset, mnist, cifar10) need `data.path`, and the
path must exist when the config is loaded, so a missing dataset is a config error before any work
starts. Validate with `context={"check_paths": False}` to skip that check on a machine that only
needs the other keys (a GPU box that never sees the raw data).
"""
from __future__ import annotations

import glob
from pathlib import Path
from typing import Literal, get_args

from pydantic import Field, ValidationInfo, field_validator

from synthgen.config.base import Section

SourceName = Literal["shapes", "digits", "imagefolder", "webdataset", "mnist", "cifar10"]
SOURCES: tuple[str, ...] = get_args(SourceName)
EXPECTED_LAYOUT = {  # what `data.path` must hold, for each source that reads local files
    "imagefolder": "a folder with one subfolder of images per class (path/<class>/<image>)",
    "webdataset": "a folder of .tar shards, one .tar file, or a glob such as 'shards/*.tar'",
    "mnist": "the folder holding train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz]",
    "cifar10": "the cifar-10-batches-py folder holding data_batch_1..5 (and batches.meta, test_batch)",
}


def is_glob(path: str) -> bool:
    return any(c in path for c in "*?[")


def path_exists(path: str) -> bool:
    """A file or folder exists at `path`, or the glob `path` matches at least one file."""
    return bool(glob.glob(path)) if is_glob(path) else Path(path).exists()


class DataConfig(Section):
    """The dataset to prepare, and the shape of the images the rest of the pipeline sees."""

    source: SourceName = "shapes"  # where images come from
    path: str | None = None  # local input for imagefolder/webdataset/mnist/cifar10 (relative to the working directory); never downloaded
    resolution: int = Field(32, ge=16, le=256)  # output images are resolution x resolution (shorter side resized, then centre-cropped)
    num_images: int = Field(2400, ge=1, le=1_000_000)  # images rendered by the shapes source (ignored by the others)
    seed: int = Field(0, ge=0)  # seeds the shapes renderer
    shape_size: tuple[float, float] = (0.18, 0.34)  # shapes source: range of each shape's radius (a circle's; a square's circumradius is 0.9x it, a triangle's 1.1x), as a fraction of the resolution
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0)  # share of images held out for validation, chosen by a hash of each key
    images_per_shard: int = Field(1000, ge=1, le=100_000)  # samples per tar shard
    image_format: Literal["png", "webp", "jpg"] = "png"  # encoding inside the shards; png is lossless
    max_image_pixels: int = Field(64_000_000, ge=1, le=89_478_485)  # images with more pixels (width x height) are rejected as decompression bombs; at most Pillow's own limit
    min_image_size: int = Field(0, ge=0)  # images whose shorter side is below this are rejected; 0 keeps all
    label_field: str = Field("cls", pattern=r"^[A-Za-z0-9_.-]+$")  # webdataset member extension that holds the label (an integer or a class name)
    include_test: bool = False  # mnist/cifar10: also read the t10k / test_batch files
    classes: tuple[str, ...] | None = Field(None, min_length=1)  # keep only these classes (labels renumbered in this order); None keeps all

    @field_validator("path")
    @classmethod
    def _path_matches_source(cls, path: str | None, info: ValidationInfo) -> str | None:
        source = info.data.get("source")
        if source not in EXPECTED_LAYOUT:
            return path
        layout = EXPECTED_LAYOUT[source]
        if not path:
            raise ValueError(f"required when data.source is {source!r}: point it at {layout}")
        if (info.context or {}).get("check_paths", True) and not path_exists(path):
            raise ValueError(f"does not exist: put {layout} there")
        return path

    @field_validator("shape_size")
    @classmethod
    def _shape_size_range(cls, size: tuple[float, float]) -> tuple[float, float]:
        low, high = size
        if not 0.05 <= low <= high <= 0.45:
            raise ValueError("must be [low, high] with 0.05 <= low <= high <= 0.45 (a shape must fit the image)")
        return size

    @field_validator("classes")
    @classmethod
    def _classes_unique(cls, classes: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if classes is not None and len(set(classes)) != len(classes):
            raise ValueError("lists a class more than once")
        return classes
