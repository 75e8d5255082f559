"""The Parquet index: one row per sample, written for each shard and merged per dataset.

Every table is built from the declared schema (`synthgen.shards.schema`) and every file carries the
store format and the class names as key-value metadata.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import pyarrow as pa
import pyarrow.parquet as pq

from synthgen.atomic import atomic_write_bytes
from synthgen.shards.schema import class_names_of, complete_row, file_metadata, schema_for


def rows_to_table(rows: list[dict]) -> pa.Table:
    """Rows (completed with their groups' defaults) as a table of the declared schema, carrying the file
    metadata with the class names the rows name."""
    rows = [complete_row(r) for r in rows]
    schema = schema_for(rows[0] if rows else ())
    if any(r.keys() != rows[0].keys() for r in rows):
        raise ValueError("rows of one table must carry the same column groups")
    table = pa.Table.from_pylist(rows, schema=schema)
    return with_class_names(table)


def with_class_names(table: pa.Table, class_names: list[str | None] | None = None) -> pa.Table:
    """`table` carrying the file metadata, with `class_names` or those its rows name."""
    if class_names is None:
        class_names = class_names_of(table["label"].to_pylist(), table["class_name"].to_pylist())
    return table.replace_schema_metadata(file_metadata(list(class_names)))


def table_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


def write_parquet(path: str | Path, table: pa.Table) -> None:
    atomic_write_bytes(path, table_bytes(table))


def merge_indexes(paths: Iterable[Path], class_names: list[str | None] | None = None) -> pa.Table:
    """The shard indexes as one table (they must share one schema), carrying the file metadata."""
    tables = [pq.read_table(p).replace_schema_metadata(None) for p in paths]
    if not tables:
        return with_class_names(schema_for(()).empty_table(), class_names or [])
    return with_class_names(pa.concat_tables(tables), class_names)
