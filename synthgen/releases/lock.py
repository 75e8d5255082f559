"""Locks of the releases root: one run per release at a time, one writer of the release index at a time.

On a local disk both are OS-level locks (`synthgen.locks`): a crashed run's lock frees itself, and a
refused run is told which process holds it. An object store has neither rename nor flock, so the
index of a remote releases root is guarded by a lock object made with a conditional create (S3's
`If-None-Match: *`): the first writer creates it with its holder's note, every other is refused
until the holder deletes it. A lock object left by a dead process on this host is taken over; one
left by another host must be deleted by hand (the refusal says which object). The create is atomic
on S3; fsspec drivers without conditional writes check first and then write, a best-effort lock.
"""
from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from synthgen.locks import LockHeldError, hold, this_holder
from synthgen.storage import Store, is_url, open_store

LOCK_SUFFIX = ".lock"
INDEX_LOCK = "index.parquet" + LOCK_SUFFIX
INDEX_WAIT_S = 60.0  # how long a release waits for another to finish writing the index
POLL_S = 0.2


class ReleaseLockedError(LockHeldError):
    """Another run is making the same release right now."""


def lock_path(release_dir: str | Path) -> Path:
    """`releases/<id>.lock`, beside the release folder, so the published folder never holds it."""
    release_dir = Path(release_dir)
    return release_dir.with_name(release_dir.name + LOCK_SUFFIX)


@contextmanager
def release_lock(release_dir: str | Path) -> Iterator[None]:
    """Hold `releases/<id>.lock` while making release `<id>`; a second run gets `ReleaseLockedError`."""
    with hold(lock_path(release_dir), f"release {Path(release_dir).name}", error=ReleaseLockedError):
        yield


@contextmanager
def waiting_lock(path: str | Path, what: str, timeout_s: float = 60.0) -> Iterator[None]:
    """Hold the lock at `path`, waiting up to `timeout_s` for its holder (for short critical sections)."""
    with hold(path, what, timeout_s):
        yield


def _dead_here(holder: dict[str, Any]) -> bool:
    """The holder was a process on this host that no longer runs."""
    if holder.get("host") != this_holder()["host"] or not isinstance(holder.get("pid"), int):
        return False
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _holder(store: Store, name: str) -> dict[str, Any]:
    try:
        note = json.loads(store.read_bytes(name))
    except (FileNotFoundError, ValueError):
        return {}
    return note if isinstance(note, dict) else {}


def _try_create(store: Store, name: str, note: bytes) -> bool:
    """Create `name` only if it does not exist (one conditional put); whether this call made it."""
    try:
        store.fs.pipe_file(store.path(name), note, mode="create")
    except FileExistsError:
        return False
    return True


@contextmanager
def object_lock(store: Store, name: str, what: str, timeout_s: float) -> Iterator[None]:
    """Hold the lock object `name` in `store` for `what`, waiting up to `timeout_s`; raise naming the holder."""
    note = this_holder()
    deadline = time.monotonic() + timeout_s
    while not _try_create(store, name, json.dumps(note).encode()):
        holder = _holder(store, name)
        if holder and _dead_here(holder):
            store.remove(name)
            continue
        if time.monotonic() >= deadline:
            who = (f"pid {holder['pid']} on host {holder['host']} (since {holder['started_at']}, running "
                   f"`{holder['command']}`)" if {"pid", "host", "started_at", "command"} <= holder.keys()
                   else "another process")
            raise LockHeldError(f"{what} is locked by {who}; wait for that run to end, or delete "
                                f"{store.url(name)} if it died")
        time.sleep(POLL_S)
    try:
        yield
    finally:
        store.remove(name)


def index_lock(root: str | Path) -> Iterator[None]:
    """The lock of `root`'s release index: a lock file on a local disk, a lock object on an object store."""
    what = f"the release index of {root}"
    if is_url(root):
        return object_lock(open_store(root), INDEX_LOCK, what, INDEX_WAIT_S)
    return waiting_lock(Path(root) / INDEX_LOCK, what, INDEX_WAIT_S)
