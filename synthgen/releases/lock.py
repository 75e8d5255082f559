"""Lock files: one run per release at a time, and one writer of the release index at a time.

A lock is a file created with `O_CREAT | O_EXCL` (exactly one creator wins, atomically) that holds
its holder's pid, host and start time. A lock whose holder pid is dead on this host is stale and is
taken over with a warning; a lock held from another host cannot be checked and is always respected.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import secrets
import socket
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from synthgen.errors import SynthgenError

log = logging.getLogger(__name__)

LOCK_SUFFIX = ".lock"
_TAKEOVER_ATTEMPTS = 3  # a takeover can lose a race to another run; each retry re-reads the lock


class LockHeldError(SynthgenError):
    """Another live process holds the lock."""


class ReleaseLockedError(LockHeldError):
    """Another run is making the same release right now."""


@dataclass(frozen=True)
class LockHolder:
    pid: int
    host: str
    started_at: str  # ISO 8601, UTC
    token: str  # random: tells this acquisition from any other by the same pid

    @classmethod
    def current(cls) -> "LockHolder":
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        return cls(os.getpid(), socket.gethostname(), now, secrets.token_hex(8))

    @classmethod
    def parse(cls, text: str) -> "LockHolder | None":
        """The holder written in a lock file, or None if the file is empty or not a lock."""
        try:
            fields = json.loads(text)
            return cls(int(fields["pid"]), str(fields["host"]), str(fields["started_at"]), str(fields["token"]))
        except (ValueError, TypeError, KeyError):
            return None

    def describe(self) -> str:
        return f"pid {self.pid} on host {self.host} (since {self.started_at})"

    def is_stale(self) -> bool:
        """True only when the holder ran on this host and its process no longer exists."""
        return self.host == socket.gethostname() and not pid_alive(self.pid)


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


def lock_path(release_dir: str | Path) -> Path:
    """`releases/<id>.lock`, beside the release folder, so the published folder never holds it."""
    release_dir = Path(release_dir)
    return release_dir.with_name(release_dir.name + LOCK_SUFFIX)


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


def _try_create(path: Path, holder: LockHolder) -> bool:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(asdict(holder), sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())
    return True


def _remove_if_unchanged(path: Path, stale_text: str) -> None:
    """Delete a stale lock only if it still holds `stale_text`. An flock on the folder serialises
    takeovers, so two runs that both saw the stale lock cannot delete each other's fresh one."""
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)
        if _read_text(path) == stale_text:
            path.unlink()
    finally:
        os.close(folder)  # also drops the flock


def _held_message(what: str, path: Path, holder: LockHolder | None) -> str:
    who = holder.describe() if holder else "a process whose lock file is empty or unreadable"
    return f"{what} is locked by {who}; wait for that run to end, or delete {path} if it is not running"


def acquire(path: str | Path, what: str, error: type[LockHeldError] = LockHeldError) -> LockHolder:
    """Create the lock file at `path` for this process, taking over a stale one; raise `error` if held."""
    path, me = Path(path), LockHolder.current()
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(_TAKEOVER_ATTEMPTS):
        if _try_create(path, me):
            return me
        text = _read_text(path)
        if text is None:  # released between our create and our read: try again
            continue
        holder = LockHolder.parse(text)
        if holder is None or not holder.is_stale():
            raise error(_held_message(what, path, holder))
        log.warning("taking over the stale lock %s of %s: %s is no longer running", path, what, holder.describe())
        _remove_if_unchanged(path, text)
    raise error(f"{what}: could not take {path} after {_TAKEOVER_ATTEMPTS} attempts; another run is racing for it")


def release(path: str | Path, holder: LockHolder) -> None:
    """Delete the lock file if it is still ours."""
    path = Path(path)
    text = _read_text(path)
    if text is not None and LockHolder.parse(text) == holder:
        path.unlink(missing_ok=True)
    else:
        log.warning("lock %s is no longer held by this run; leaving it in place", path)


@contextmanager
def release_lock(release_dir: str | Path) -> Iterator[LockHolder]:
    """Hold `releases/<id>.lock` while making release `<id>`; a second run gets `ReleaseLockedError`."""
    path = lock_path(release_dir)
    holder = acquire(path, f"release {Path(release_dir).name}", ReleaseLockedError)
    try:
        yield holder
    finally:
        release(path, holder)


@contextmanager
def waiting_lock(path: str | Path, what: str, timeout_s: float = 60.0, poll_s: float = 0.05) -> Iterator[LockHolder]:
    """Hold the lock at `path`, waiting up to `timeout_s` for a live holder (for short critical sections)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            holder = acquire(path, what)
            break
        except LockHeldError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(poll_s)
    try:
        yield holder
    finally:
        release(path, holder)
