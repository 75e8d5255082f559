"""Locks of the releases root: one run per release at a time, one writer of the release index at a time.

Both are OS-level locks (`synthgen.locks`): a crashed run's lock frees itself, and a refused run is
told which process holds it.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from synthgen.locks import LockHeldError, hold

LOCK_SUFFIX = ".lock"


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
