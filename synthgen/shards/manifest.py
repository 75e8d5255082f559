"""`manifest.json`: the dataset's table of contents, written last, so its presence means done."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from synthgen.atomic import atomic_write_json, sha256_file
from synthgen.errors import SynthgenError
from synthgen.shards.index import merge_indexes, write_parquet

MANIFEST = "manifest.json"
METADATA = "metadata.parquet"
FORMAT = "synthgen.shards/v1"


class ShardStoreError(SynthgenError):
    """A dataset folder is missing, incomplete or fails its checksums."""


def finish_dataset(folder: str | Path, shards: list[dict[str, Any]], config: dict[str, Any] | None = None,
                   extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Merge the shard indexes into `metadata.parquet`, then publish `manifest.json`."""
    folder = Path(folder)
    shards = sorted(shards, key=lambda s: s["name"])
    table = merge_indexes(folder / s["index"] for s in shards)
    write_parquet(folder / METADATA, table)
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
    if manifest.get("format") != FORMAT:
        raise ShardStoreError(f"{path} has format {manifest.get('format')!r}, expected {FORMAT!r}")
    return manifest


def verify_shard(folder: str | Path, entry: dict[str, Any]) -> bool:
    path = Path(folder) / entry["name"]
    return path.is_file() and path.stat().st_size == entry["bytes"] and sha256_file(path) == entry["sha256"]


def verify_dataset(folder: str | Path) -> list[str]:
    """Names of the shards that are missing or whose sha256 does not match the manifest."""
    manifest = read_manifest(folder)
    return [s["name"] for s in manifest["shards"] if not verify_shard(folder, s)]
