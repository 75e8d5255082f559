"""Publish a finished local release folder to a releases root on an object store.

Releases are made on a local disk (sampling and evaluation need one) and uploaded once finished.
An object store has no rename, so the upload keeps the dataset's commit order: shards, their
indexes, metadata and the wids index, the card, the evaluation files, then `manifest.json` (the
release's commit point); the caller writes the index row after it (the commit point of the
release list). An object already there with the same sha256 is kept, so a rerun after a crash
uploads only what is missing.
"""
from __future__ import annotations

from pathlib import Path

from synthgen.atomic import sha256_file
from synthgen.outputs import CONTROL_FILES
from synthgen.shards.names import INDEX_DIR, MANIFEST, METADATA, PROGRESS, WIDS_INDEX
from synthgen.storage import Store

CARD = "README.md"


def commit_rank(name: str) -> int:
    """Where the object `name` (relative to the release) comes in the upload order."""
    if name == MANIFEST:
        return 5
    if name.endswith(".tar") and "/" not in name:
        return 0
    if name.startswith(INDEX_DIR + "/"):
        return 1
    if name in (METADATA, WIDS_INDEX):
        return 2
    return 3 if name == CARD else 4


def release_files(folder: Path) -> list[str]:
    """The files of a local release to publish, in commit order (no resume receipts, locks or markers)."""
    names = [p.relative_to(folder).as_posix() for p in folder.rglob("*")
             if p.is_file() and PROGRESS not in p.relative_to(folder).parts and p.name not in CONTROL_FILES]
    return sorted(names, key=lambda n: (commit_rank(n), n))


def has_copy(store: Store, name: str, local: Path) -> bool:
    """`name` is in `store` with the bytes of `local` (size first, then sha256)."""
    stat = store.stat(name)
    return stat is not None and stat[0] == local.stat().st_size and store.sha256(name) == sha256_file(local)


def upload_release(folder: Path, store: Store) -> list[str]:
    """Upload the release `folder` into `store` in commit order; the names it had to upload."""
    uploaded = []
    for name in release_files(folder):
        if not has_copy(store, name, folder / name):
            store.put_atomic(name, folder / name)
            uploaded.append(name)
    return uploaded
