"""The one Parquet schema of shard metadata: every column, its Arrow type, default and meaning.

Columns come in groups. Every row has the `sample` columns (no defaults: the writer fills them).
A row that carries any column of another group carries all of that group's columns, the missing
ones set to their defaults, so every shard of a dataset, and its merged `metadata.parquet`, have the
same columns and types (a refill leaves `refill_round` 0, not null, in shards it did not touch). A
column that is not declared here is refused. Each row is also the `<key>.json` member of its sample.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import pyarrow as pa

from synthgen.shards.names import FORMAT

REQUIRED = object()  # the default of a column the writer always fills

# key-value metadata of every metadata Parquet file
FORMAT_KEY, CLASS_NAMES_KEY = b"synthgen.format", b"synthgen.class_names"


@dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType
    group: str  # sample | source | generation
    doc: str
    default: Any = REQUIRED

    @property
    def field(self) -> pa.Field:
        return pa.field(self.name, self.type, nullable=self.default is not REQUIRED)


COLUMNS: tuple[Column, ...] = (
    Column("key", pa.string(), "sample", "sample key: the tar member stem, unique in the dataset"),
    Column("shard", pa.string(), "sample", "the shard (tar file name) that holds the sample"),
    Column("index", pa.int32(), "sample", "position of the sample in its shard"),
    Column("label", pa.int64(), "sample", "class label (the position of its name in the class names)"),
    Column("class_name", pa.string(), "sample", "name of the label's class"),
    Column("sha256", pa.string(), "sample", "sha256 of the encoded image bytes"),
    Column("width", pa.int32(), "sample", "image width in pixels"),
    Column("height", pa.int32(), "sample", "image height in pixels"),
    Column("format", pa.string(), "sample", "image encoding: png, webp or jpg"),
    Column("origin", pa.string(), "source", "where a prepared (real) image came from", None),
    Column("seed", pa.int64(), "generation", "the sample's own noise seed", None),
    Column("sampler", pa.string(), "generation", "sampler name", None),
    Column("steps", pa.int32(), "generation", "sampler steps", None),
    Column("eta", pa.float64(), "generation", "sampler stochasticity (DDIM eta)", None),
    Column("guidance_scale", pa.float64(), "generation", "classifier-free guidance scale", None),
    Column("guidance_method", pa.string(), "generation", "how guidance combines the predictions: cfg, cfg_rescale or apg", None),
    Column("autoguidance_scale", pa.float64(), "generation", "autoguidance a: the conditional prediction extrapolated away from the guide; 1: off", None),
    Column("timestep_spacing", pa.string(), "generation", "how the sampler's timesteps are spaced", None),
    Column("diffusion_sha256", pa.string(), "generation", "sha256 of the diffusion checkpoint", None),
    Column("autoencoder_sha256", pa.string(), "generation", "sha256 of the autoencoder checkpoint", None),
    Column("config_hash", pa.string(), "generation", "run key of the params, seed and checkpoints", None),
    Column("attempts", pa.int32(), "generation", "draws until the sampling filter accepted the sample; 1: the first", 1),
    Column("filter_confidence", pa.float64(), "generation", "the filter's probability of the requested class; null: no filter", None),
    Column("refill_round", pa.int32(), "generation", "refill round that made the sample; 0: original", 0),
    Column("replaces", pa.string(), "generation", "key of the flagged sample it replaced; null: original", None),
)
BY_NAME: dict[str, Column] = {c.name: c for c in COLUMNS}
SAMPLE_COLUMNS = tuple(c.name for c in COLUMNS if c.group == "sample")


def undeclared(names: Iterable[str]) -> list[str]:
    return sorted(set(names) - BY_NAME.keys())


def columns_for(names: Iterable[str]) -> tuple[Column, ...]:
    """The columns of rows that carry `names`: the sample columns and every group those names touch."""
    unknown = undeclared(names)
    if unknown:
        raise ValueError(f"columns {unknown} are not declared in synthgen/shards/schema.py")
    groups = {"sample"} | {BY_NAME[n].group for n in names}
    return tuple(c for c in COLUMNS if c.group in groups)


def complete_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """`row` with every column of its groups, in declaration order; missing ones get their defaults."""
    out = {}
    for column in columns_for(row):
        value = row.get(column.name, column.default)
        if value is REQUIRED:
            raise ValueError(f"row {row.get('key')!r} has no {column.name!r}")
        out[column.name] = value
    return out


def schema_for(names: Iterable[str]) -> pa.Schema:
    return pa.schema([c.field for c in columns_for(names)])


def class_names_of(labels: Iterable[int], names: Iterable[str]) -> list[str | None]:
    """Class names by label, from (label, class_name) pairs; None for a label no row has."""
    by_label: dict[int, str] = {}
    for label, name in zip(labels, names):
        if by_label.setdefault(int(label), name) != name:
            raise ValueError(f"label {label} is named both {by_label[int(label)]!r} and {name!r}")
    return [by_label.get(i) for i in range(max(by_label, default=-1) + 1)]


def file_metadata(class_names: list[str | None]) -> dict[bytes, bytes]:
    """Key-value metadata of a metadata Parquet file: the store format and the class names (JSON)."""
    return {FORMAT_KEY: FORMAT.encode(), CLASS_NAMES_KEY: json.dumps(class_names).encode()}


def read_class_names(schema: pa.Schema) -> list[str | None]:
    """The class names a metadata Parquet file records."""
    return json.loads((schema.metadata or {})[CLASS_NAMES_KEY])
