"""Write WebDataset shards (named by `synthgen.shards.keys.shard_name`) plus a Parquet index per shard.

A sample is `<key>.<format>` (the encoded image), `<key>.cls` (the integer label) and
`<key>.json` (its metadata row, of the declared schema). A shard is written to a temporary file and
published whole (renamed on a local disk, uploaded to an object store), after its index
(`synthgen.shards.names.shard_index_name`): a `.tar` under its final name is always complete. A
shard path may be a local path or an fsspec URL (`synthgen.storage`).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Iterable

from synthgen.atomic import sha256_bytes
from synthgen.shards.index import rows_to_table, table_bytes
from synthgen.shards.keys import check_key, shard_name
from synthgen.shards.manifest import finish_dataset
from synthgen.shards.names import shard_index_name
from synthgen.shards.schema import complete_row
from synthgen.shards.tar import HashingWriter, add_member, open_tar
from synthgen.storage import open_store, split_location

IMAGE_FORMATS = ("png", "webp", "jpg")


@dataclass(frozen=True)
class ShardSample:
    key: str
    image: bytes  # encoded image bytes
    label: int
    class_name: str
    width: int
    height: int
    format: str  # png | webp | jpg
    meta: dict[str, Any] = field(default_factory=dict)  # stage-specific fields: Parquet columns too


def sample_row(sample: ShardSample, shard: str, position: int) -> dict[str, Any]:
    if sample.format not in IMAGE_FORMATS:
        raise ValueError(f"image format {sample.format!r} is not one of {IMAGE_FORMATS}")
    row = dict(
        key=check_key(sample.key), shard=shard, index=position, label=int(sample.label),
        class_name=sample.class_name, sha256=sha256_bytes(sample.image),
        width=int(sample.width), height=int(sample.height), format=sample.format,
    )
    clash = row.keys() & sample.meta.keys()
    if clash:
        raise ValueError(f"sample meta may not override base columns: {sorted(clash)}")
    return complete_row(row | sample.meta)


def write_shard(path: str | os.PathLike, samples: Iterable[ShardSample]) -> dict[str, Any]:
    """Write one complete shard and its index atomically; return its manifest entry."""
    store, name = split_location(path)
    index = shard_index_name(name)
    rows: list[dict] = []
    with store.writer(name) as f:
        sink = HashingWriter(f)
        with open_tar(sink) as tar:
            for sample in samples:
                row = sample_row(sample, name, len(rows))
                if rows and row.keys() != rows[0].keys():
                    raise ValueError(f"sample {sample.key!r} has different meta fields from the shard's first")
                add_member(tar, f"{sample.key}.{sample.format}", sample.image)
                add_member(tar, f"{sample.key}.cls", str(row["label"]).encode())
                add_member(tar, f"{sample.key}.json", json.dumps(row, sort_keys=True).encode())
                rows.append(row)
        if not rows:
            raise ValueError(f"refusing to write an empty shard {name}")
        if len({r["key"] for r in rows}) != len(rows):
            raise ValueError(f"duplicate keys in shard {name}")
        # The index is published first: a visible .tar always has its index beside it.
        store.put_atomic(index, table_bytes(rows_to_table(rows)))
    return {
        "name": name,
        "index": index,
        "count": len(rows),
        "bytes": sink.bytes,
        "sha256": sink.hexdigest(),
    }


class ShardWriter:
    """Roll samples into shards of at most `max_count` samples (and `max_bytes` of images)."""

    def __init__(self, folder: str | os.PathLike, prefix: str, max_count: int = 1000,
                 max_bytes: int | None = None, image_format: str = "png", start_index: int = 0):
        self.folder, self.prefix = folder, prefix
        self.max_count, self.max_bytes, self.image_format = max_count, max_bytes, image_format
        self.next_index = start_index
        self.shards: list[dict[str, Any]] = []
        self._pending: list[ShardSample] = []
        self._pending_bytes = 0
        self._keys: set[str] = set()
        self._store = open_store(folder)
        self._store.makedirs()

    def write(self, sample: ShardSample) -> None:
        if sample.key in self._keys:
            raise ValueError(f"duplicate sample key {sample.key!r}")
        if sample.format != self.image_format:
            raise ValueError(f"sample {sample.key!r} is {sample.format}, this writer writes {self.image_format}")
        self._keys.add(check_key(sample.key))
        self._pending.append(sample)
        self._pending_bytes += len(sample.image)
        full = len(self._pending) >= self.max_count
        if full or (self.max_bytes is not None and self._pending_bytes >= self.max_bytes):
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        self.shards.append(write_shard(self._store.url(shard_name(self.prefix, self.next_index)), self._pending))
        self.next_index += 1
        self._pending, self._pending_bytes = [], 0

    @property
    def count(self) -> int:
        return len(self._keys)

    def finish_dataset(self, config: dict[str, Any] | None = None, extra: dict[str, Any] | None = None) -> dict:
        """Flush, then write `metadata.parquet` and `manifest.json` (last) for this folder."""
        self.flush()
        return finish_dataset(self.folder, self.shards, config=config, extra=extra)

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.flush()

