"""Resumable writing: a receipt per finished shard, so a rerun makes only what is missing.

A shard counts as done only when its receipt exists, names the same run config, and the tar's
sha256 still matches. Everything else (temporary files, orphans, stale or tampered shards) is
removed and made again; deterministic generation makes the result byte-identical to an
uninterrupted run.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from synthgen.atomic import atomic_write_json, remove_leftovers
from synthgen.shards.manifest import verify_shard
from synthgen.shards.names import INDEX_DIR, MANIFEST, METADATA, PROGRESS, WIDS_INDEX, shard_index_name


def receipt_path(folder: Path, shard_name: str) -> Path:
    return folder / PROGRESS / f"{shard_name}.json"


def record_done(folder: str | Path, entry: dict[str, Any], run_key: str) -> None:
    """Publish a shard's receipt: its manifest entry plus the run it belongs to."""
    atomic_write_json(receipt_path(Path(folder), entry["name"]), {**entry, "run_key": run_key})


def _valid_receipt(folder: Path, path: Path, run_key: str) -> dict[str, Any] | None:
    try:
        receipt = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if receipt.get("run_key") != run_key or not verify_shard(folder, receipt):
        return None
    return {k: v for k, v in receipt.items() if k != "run_key"}


def resume_state(folder: str | Path, run_key: str) -> dict[str, dict[str, Any]]:
    """Clean `folder` for a (re)run and return the verified finished shards by name.

    The dataset-level manifest and metadata are withdrawn first: until the run completes again,
    the folder must not look finished.
    """
    folder = Path(folder)
    (folder / PROGRESS).mkdir(parents=True, exist_ok=True)
    for name in (MANIFEST, METADATA, WIDS_INDEX):
        (folder / name).unlink(missing_ok=True)
    for sub in (folder, folder / PROGRESS, folder / INDEX_DIR):
        remove_leftovers(sub)
    done: dict[str, dict[str, Any]] = {}
    for path in sorted((folder / PROGRESS).glob("*.json")):
        entry = _valid_receipt(folder, path, run_key)
        if entry is None:
            path.unlink()
        else:
            done[entry["name"]] = entry
    for shard in folder.glob("*.tar"):
        if shard.name not in done:  # published but never receipted, or from another run: remake it
            shard.unlink()
            (folder / shard_index_name(shard.name)).unlink(missing_ok=True)
    return done
