"""The Parquet index: one row per sample, written beside each shard and merged per dataset."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import pyarrow as pa
import pyarrow.parquet as pq

from synthgen.atomic import atomic_write_bytes

BASE_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("shard", pa.string()),
        ("index", pa.int32()),
        ("label", pa.int64()),
        ("class_name", pa.string()),
        ("sha256", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("format", pa.string()),
    ]
)


def rows_to_table(rows: list[dict]) -> pa.Table:
    """Base columns with fixed types, then stage-specific columns with types inferred from values."""
    extra = [k for k in rows[0] if k not in BASE_SCHEMA.names] if rows else []
    columns = {f.name: pa.array([r[f.name] for r in rows], f.type) for f in BASE_SCHEMA}
    columns.update({k: pa.array([r.get(k) for r in rows]) for k in extra})
    return pa.table(columns)


def table_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


def write_parquet(path: str | Path, table: pa.Table) -> None:
    atomic_write_bytes(path, table_bytes(table))


def merge_indexes(paths: Iterable[Path]) -> pa.Table:
    tables = [pq.read_table(p) for p in paths]
    if not tables:
        return BASE_SCHEMA.empty_table()
    return pa.concat_tables(tables, promote_options="default")
