"""Params for the prepare stage: where the images come from and how they are normalised.

The `data` section holds the keys every source shares (below) and the options of every registered
source (`synthgen.data.catalog`), each declared once by its source module. The keys stay flat under
`data:` so that the resolved params, and the params hash releases record, keep their layout.

Sources that read local files (their options derive from `LocalFiles`) need `data.path`, and the
path must exist when the config is loaded, so a missing dataset is a config error before any work
starts. Validate with `context={"check_paths": False}` to skip that check on a machine that only
needs the other keys (a GPU box that never sees the raw data).
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from synthgen.config.base import Name, Section
from synthgen.data.catalog import SOURCES
from synthgen.data.sources import LocalFiles, path_exists

SourceName = Literal[tuple(SOURCES)]
OPTION_MODELS = tuple(dict.fromkeys(spec.options for spec in SOURCES.values() if spec.options.model_fields))


class DataCommon(Section):
    """The keys of the data section that every source shares."""

    source: SourceName = "shapes"  # where images come from
    resolution: int = Field(32, ge=16, le=256)  # output images are resolution x resolution (shorter side resized, then centre-cropped)
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0)  # share of images held out for validation, chosen by a hash of each key
    images_per_shard: int = Field(1000, ge=1, le=100_000)  # samples per tar shard
    image_format: Literal["png", "webp", "jpg"] = "png"  # encoding inside the shards; png is lossless
    max_image_pixels: int = Field(64_000_000, ge=1, le=89_478_485)  # images with more pixels (width x height) are rejected as decompression bombs; at most Pillow's own limit
    min_image_size: int = Field(0, ge=0)  # images whose shorter side is below this are rejected; 0 keeps all
    classes: tuple[Name, ...] | None = Field(None, min_length=1, max_length=100_000)  # keep only these classes (labels renumbered in this order); None keeps all

    @field_validator("classes")
    @classmethod
    def _classes_unique(cls, classes: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if classes is not None and len(set(classes)) != len(classes):
            raise ValueError("lists a class more than once")
        return classes


class DataConfig(*reversed(OPTION_MODELS), DataCommon):
    """The dataset to prepare, and the shape of the images the rest of the pipeline sees; a source's
    options are read by that source only."""

    @field_validator("path", check_fields=False)
    @classmethod
    def _path_matches_source(cls, path: str | None, info: ValidationInfo) -> str | None:
        source = info.data.get("source")
        options = SOURCES[source].options if source in SOURCES else None
        if not (isinstance(options, type) and issubclass(options, LocalFiles)):
            return path
        if not path:
            raise ValueError(f"required when data.source is {source!r}: point it at {options.layout}")
        if (info.context or {}).get("check_paths", True) and not path_exists(path):
            raise ValueError(f"does not exist: put {options.layout} there")
        return path

    def options(self) -> Section:
        """The chosen source's options model, filled from this section."""
        model = SOURCES[self.source].options
        return model.model_validate({name: getattr(self, name) for name in model.model_fields})
