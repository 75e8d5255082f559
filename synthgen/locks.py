"""One writer at a time: an OS-level lock file (`flock`, through filelock) with a note naming its holder.

The kernel drops a `flock` when its holder's process ends, however it ends, so a crashed run never
leaves a lock behind and nothing has to guess from pids whether a holder still lives. Beside the
lock file, `<lock>.json` names the holder (pid, host, start time, command) so a refused run can say
who holds it; the note is written after the lock is taken and removed before it is let go.
"""
from __future__ import annotations

import json
import os
import socket
import sys
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from filelock import Timeout, UnixFileLock

from synthgen.atomic import atomic_write_json
from synthgen.errors import SynthgenError

HOLDER_SUFFIX = ".json"


class LockHeldError(SynthgenError):
    """Another process holds the lock."""


def holder_path(lock_file: Path) -> Path:
    return lock_file.with_name(lock_file.name + HOLDER_SUFFIX)


def this_holder() -> dict[str, Any]:
    """Who is taking a lock: this process, its host, the time and its command line."""
    return {"pid": os.getpid(), "host": socket.gethostname(),
            "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])}


def describe_holder(lock_file: Path) -> str:
    """The holder named in the note beside `lock_file`, as words."""
    try:
        h = json.loads(holder_path(lock_file).read_text())
        return f"pid {h['pid']} on host {h['host']} (since {h['started_at']}, running `{h['command']}`)"
    except (OSError, ValueError, TypeError, KeyError):
        return "another process (it has not named itself yet)"


@contextmanager
def hold(lock_file: str | Path, what: str, timeout_s: float = 0, error: type[LockHeldError] = LockHeldError
         ) -> Iterator[None]:
    """Hold the lock at `lock_file` for `what`, waiting up to `timeout_s`; raise `error` naming the holder.

    Not re-entrant: a second `hold` of the same file, even in this process, is refused.
    """
    lock_file = Path(lock_file)
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    lock = UnixFileLock(lock_file, timeout=timeout_s, thread_local=False, fallback_to_soft=False)
    try:
        lock.acquire()
    except Timeout:
        raise error(f"{what} is locked by {describe_holder(lock_file)}; wait for that run to end") from None
    try:
        atomic_write_json(holder_path(lock_file), this_holder())
        yield
    finally:
        holder_path(lock_file).unlink(missing_ok=True)
        lock.release()
