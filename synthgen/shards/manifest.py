"""`manifest.json`: the dataset's table of contents, written last, so its presence means done.

The commit protocol holds on any store, with or without atomic rename: shards and their indexes
are published first, then `metadata.parquet`, then `manifest.json`. Readers trust only what the
manifest lists; anything else in the folder (a crashed run's objects) is ignored.
"""
from __future__ import annotations

import json
import os
from typing import Any, Callable

import pyarrow as pa

from synthgen.atomic import canonical_json, sha256_bytes
from synthgen.errors import SynthgenError
from synthgen.shards.index import merge_indexes, table_bytes
from synthgen.shards.names import FORMAT, MANIFEST, METADATA, OLD_FORMATS, WIDS_INDEX
from synthgen.shards.shardlist import shardlist_bytes
from synthgen.storage import Store, open_store


class ShardStoreError(SynthgenError):
    """A dataset folder is missing, incomplete or fails its checksums."""


def finish_dataset(folder: str | os.PathLike, shards: list[dict[str, Any]], config: dict[str, Any] | None = None,
                   extra: dict[str, Any] | None = None,
                   files: Callable[[dict[str, Any]], dict[str, bytes]] | None = None) -> dict[str, Any]:
    """Merge the shard indexes into `metadata.parquet`, write the `shards.json` wids index, then publish
    `manifest.json` (the commit point). The metadata records `extra["class_names"]` if given, else the names
    its rows carry.

    `files` makes more files from the manifest (a dataset card, say): they are published before it.
    """
    store = open_store(folder)
    shards = sorted(shards, key=lambda s: s["name"])
    indexes = (pa.BufferReader(store.read_bytes(s["index"])) for s in shards)
    metadata = table_bytes(merge_indexes(indexes, (extra or {}).get("class_names")))
    store.put_atomic(METADATA, metadata)
    store.put_atomic(WIDS_INDEX, shardlist_bytes(shards))
    manifest = {
        "format": FORMAT,
        "num_samples": sum(s["count"] for s in shards),
        "num_shards": len(shards),
        "shards": shards,
        "metadata": {"name": METADATA, "sha256": sha256_bytes(metadata)},
        "config": config or {},
        **(extra or {}),
    }
    for name, data in (files(manifest) if files else {}).items():
        store.put_atomic(name, data)
    store.put_atomic(MANIFEST, canonical_json(manifest).encode())
    return manifest


def read_manifest(folder: str | os.PathLike) -> dict[str, Any]:
    store = open_store(folder)
    if not store.exists(MANIFEST):
        raise ShardStoreError(f"{folder} is not a finished dataset: {MANIFEST} is missing")
    manifest = json.loads(store.read_bytes(MANIFEST))
    found = manifest.get("format")
    if found in OLD_FORMATS:
        raise ShardStoreError(f"{folder} is a {found} dataset, an older layout; this synthgen reads {FORMAT}: "
                              "make it again (synthgen sample) or read it with the synthgen that wrote it")
    if found != FORMAT:
        raise ShardStoreError(f"{store.url(MANIFEST)} has format {found!r}, expected {FORMAT!r}")
    return manifest


def file_problem(store: Store, name: str, size: int | None, sha256: str,
                 digest: Callable[[str], str] | None = None) -> str | None:
    """Why `name` in `store` lacks the size and sha256 the manifest lists, or None when it has them.

    `digest` computes an object's sha256 (default `store.sha256`; the reader passes a cached one).
    """
    stat = store.stat(name)
    if stat is None:
        return f"is listed in {MANIFEST} but missing"
    if size is not None and stat[0] != size:
        return f"is {stat[0]} bytes, {MANIFEST} lists {size}: it is truncated or replaced"
    if (digest or store.sha256)(name) != sha256:
        return f"fails its sha256 check against {MANIFEST}: it was modified"
    return None


def verify_shard(folder: str | os.PathLike | Store, entry: dict[str, Any]) -> bool:
    """True if the shard `entry` names is in `folder` with the size and sha256 it lists."""
    store = folder if isinstance(folder, Store) else open_store(folder)
    return file_problem(store, entry["name"], entry["bytes"], entry["sha256"]) is None


def verify_dataset(folder: str | os.PathLike) -> list[str]:
    """Names of the shards that are missing or whose sha256 does not match the manifest."""
    manifest, store = read_manifest(folder), open_store(folder)
    return [s["name"] for s in manifest["shards"] if not verify_shard(store, s)]
