"""`manifest.json`: the dataset's table of contents, written last, so its presence means done."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from synthgen.atomic import atomic_write_bytes, atomic_write_json, sha256_file
from synthgen.errors import SynthgenError
from synthgen.shards.index import merge_indexes, write_parquet
from synthgen.shards.names import FORMAT, MANIFEST, METADATA, OLD_FORMATS, WIDS_INDEX
from synthgen.shards.shardlist import shardlist_bytes


class ShardStoreError(SynthgenError):
    """A dataset folder is missing, incomplete or fails its checksums."""


def finish_dataset(folder: str | Path, shards: list[dict[str, Any]], config: dict[str, Any] | None = None,
                   extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Merge the shard indexes into `metadata.parquet`, write the `shards.json` wids index, then publish
    `manifest.json`. The metadata records `extra["class_names"]` if given, else the names its rows carry."""
    folder = Path(folder)
    shards = sorted(shards, key=lambda s: s["name"])
    table = merge_indexes((folder / s["index"] for s in shards), (extra or {}).get("class_names"))
    write_parquet(folder / METADATA, table)
    atomic_write_bytes(folder / WIDS_INDEX, shardlist_bytes(shards))
    manifest = {
        "format": FORMAT,
        "num_samples": sum(s["count"] for s in shards),
        "num_shards": len(shards),
        "shards": shards,
        "metadata": {"name": METADATA, "sha256": sha256_file(folder / METADATA)},
        "config": config or {},
        **(extra or {}),
    }
    atomic_write_json(folder / MANIFEST, manifest)
    return manifest


def read_manifest(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise ShardStoreError(f"{folder} is not a finished dataset: {MANIFEST} is missing")
    manifest = json.loads(path.read_text())
    found = manifest.get("format")
    if found in OLD_FORMATS:
        raise ShardStoreError(f"{folder} is a {found} dataset, an older layout; this synthgen reads {FORMAT}: "
                              "make it again (synthgen sample) or read it with the synthgen that wrote it")
    if found != FORMAT:
        raise ShardStoreError(f"{path} has format {found!r}, expected {FORMAT!r}")
    return manifest


def verify_shard(folder: str | Path, entry: dict[str, Any]) -> bool:
    path = Path(folder) / entry["name"]
    return path.is_file() and path.stat().st_size == entry["bytes"] and sha256_file(path) == entry["sha256"]


def verify_dataset(folder: str | Path) -> list[str]:
    """Names of the shards that are missing or whose sha256 does not match the manifest."""
    manifest = read_manifest(folder)
    return [s["name"] for s in manifest["shards"] if not verify_shard(folder, s)]
