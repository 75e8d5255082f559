"""Resumable writing: a receipt per finished shard, so a rerun makes only what is missing.

A shard counts as done only when its receipt exists, names the same run config, and the tar's
sha256 still matches. Everything else (temporary files, orphans, stale or tampered shards) is
removed and made again; deterministic generation makes the result byte-identical to an
uninterrupted run. The folder may be local or on an object store (`synthgen.storage`).
"""
from __future__ import annotations

import json
import os
from typing import Any

from synthgen.atomic import canonical_json, remove_leftovers
from synthgen.shards.manifest import verify_shard
from synthgen.shards.names import INDEX_DIR, MANIFEST, METADATA, PROGRESS, WIDS_INDEX, shard_index_name
from synthgen.storage import Store, open_store


def receipt_name(shard_name: str) -> str:
    return f"{shard_name}.json"


def record_done(folder: str | os.PathLike, entry: dict[str, Any], run_key: str) -> None:
    """Publish a shard's receipt: its manifest entry plus the run it belongs to."""
    receipts = open_store(folder).child(PROGRESS)
    receipts.put_atomic(receipt_name(entry["name"]), canonical_json({**entry, "run_key": run_key}).encode())


def _valid_receipt(store: Store, receipts: Store, name: str, run_key: str) -> dict[str, Any] | None:
    try:
        receipt = json.loads(receipts.read_bytes(name))
    except (OSError, ValueError):
        return None
    if receipt.get("run_key") != run_key or not verify_shard(store, receipt):
        return None
    return {k: v for k, v in receipt.items() if k != "run_key"}


def resume_state(folder: str | os.PathLike, run_key: str) -> dict[str, dict[str, Any]]:
    """Clean `folder` for a (re)run and return the verified finished shards by name.

    The dataset-level manifest and metadata are withdrawn first: until the run completes again,
    the folder must not look finished.
    """
    store = open_store(folder)
    receipts = store.child(PROGRESS)
    receipts.makedirs()
    for name in (MANIFEST, METADATA, WIDS_INDEX):
        store.remove(name)
    if store.is_local:  # object stores publish by a single put: no temporary files to sweep
        for sub in (store.root, receipts.root, store.path(INDEX_DIR)):
            remove_leftovers(sub)
    done: dict[str, dict[str, Any]] = {}
    for name in receipts.list(".json"):
        entry = _valid_receipt(store, receipts, name, run_key)
        if entry is None:
            receipts.remove(name)
        else:
            done[entry["name"]] = entry
    for shard in store.list(".tar"):
        if shard not in done:  # published but never receipted, or from another run: remake it
            store.remove(shard)
            store.remove(shard_index_name(shard))
    return done
