"""Outputs are owned: a stage writes only into a folder it made, or one that carries its marker, one writer at a time.

When a stage writes a folder it leaves `.synthgen-output.json` there: its kind (the stage), the run
key of the run that wrote it (for stages that have one), and nothing time-dependent, so a rerun's
outputs stay byte-identical. Before any work, `claim` refuses with one line:
- a release (a releases root or anything under it, or a folder marked as a release), whatever
  `--force` says: releases are written by the release job only;
- a folder that holds anything but no marker (a user's folder, a split of `data/prepared`), or the
  marker of another stage;
- for a stage with a run key (`sample`), its own output from another run, which the new run would delete.
`replacing()` (the CLI's `--force`) lets a stage take over such a folder. A claimed folder is locked
(`synthgen.locks`) until the claim ends, so a second writer is refused and told who holds it. Stages
a claim's holder runs into the same folder (a release samples and evaluates into its own folder)
write under that claim, as do the other ranks of a `torchrun` job under its rank 0's.
"""
from __future__ import annotations

import functools
import json
import os
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Callable, Iterator

from synthgen.atomic import atomic_write_json
from synthgen.errors import SynthgenError
from synthgen.locks import HOLDER_SUFFIX, hold
from synthgen.releases.consumer import is_releases_root

MARKER = ".synthgen-output.json"
LOCK = ".synthgen.lock"
CONTROL_FILES = frozenset({MARKER, LOCK, LOCK + HOLDER_SUFFIX})  # a folder holding only these is empty
RELEASE = "release"  # the kind of a release folder, made by the release job or `publish_dataset`
_LISTED = 3  # entries named in a refusal

_replacing: ContextVar[bool] = ContextVar("synthgen_replace_outputs", default=False)
_claimed: set[Path] = set()  # folders this process holds a claim on


class OutputRefusedError(SynthgenError):
    """A stage would write into a folder it does not own."""


@contextmanager
def replacing(enabled: bool = True) -> Iterator[None]:
    """Within this block, stages may replace a foreign folder or another run's output (never a release)."""
    token = _replacing.set(enabled)
    try:
        yield
    finally:
        _replacing.reset(token)


def read_marker(folder: str | Path) -> dict[str, Any] | None:
    """The marker of a stage output folder, or None if it has none (or an unreadable one)."""
    try:
        marker = json.loads((Path(folder) / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def is_release(folder: str | Path) -> bool:
    """A releases root, a folder anywhere under one, or a folder marked as a release (a copy elsewhere)."""
    folder = Path(folder).resolve()
    return any(is_releases_root(p) for p in (folder, *folder.parents)) or \
        (read_marker(folder) or {}).get("kind") == RELEASE


def contents(folder: Path) -> list[str]:
    """What `folder` holds, but for the lock, the marker and stage output folders nested in it (`eval/sweep`)."""
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir()
                  if p.name not in CONTROL_FILES and not (p.is_dir() and (p / MARKER).is_file()))


def _listing(entries: list[str]) -> str:
    more = f" and {len(entries) - _LISTED} more" if len(entries) > _LISTED else ""
    return ", ".join(entries[:_LISTED]) + more


def foreign(folder: Path, kind: str, run_key: str | None) -> str | None:
    """Why `folder` is not `kind`'s to write (with run key `run_key`), or None when it is."""
    if folder.exists() and not folder.is_dir():
        return f"{folder} is a file, not a folder"
    marker, held = read_marker(folder), contents(folder)
    if marker is None:
        return f"{folder} holds files that no synthgen stage wrote ({_listing(held)})" if held else None
    if marker.get("kind") != kind:
        return f"{folder} holds the output of stage {marker.get('kind')!r}, not of {kind!r}"
    if run_key is not None and marker.get("run_key") not in (None, run_key) and held:
        return (f"{folder} holds another {kind} run (run key {marker.get('run_key')}, this run {run_key}) "
                "that this run would delete")
    return None


def check_writable(folder: Path, kind: str, run_key: str | None = None) -> None:
    """Raise `OutputRefusedError` unless `kind` may write `folder` (see the module's rules)."""
    if kind != RELEASE and is_release(folder):
        raise OutputRefusedError(f"{folder} belongs to a release: releases are never written by a stage, even with "
                                 "--force; choose another --out")
    reason = None if _replacing.get() else foreign(folder, kind, run_key)
    if reason:
        raise OutputRefusedError(f"{reason}; choose another --out, or pass --force to replace it")


def write_marker(folder: Path, kind: str, run_key: str | None) -> None:
    """Mark `folder` as `kind`'s output of run `run_key` (a marker that already says so is left alone)."""
    old = read_marker(folder) or {}
    if (old.get("kind"), old.get("run_key")) != (kind, run_key):
        atomic_write_json(folder / MARKER, {"kind": kind, "run_key": run_key})


def torchrun_follower() -> bool:
    """A rank other than 0 of a `torchrun` job: it writes under rank 0's claim."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and int(os.environ.get("RANK", "0")) > 0


@contextmanager
def claim(out: str | Path, kind: str, run_key: str | None = None,
          lock: AbstractContextManager | None = None) -> Iterator[Path]:
    """Own `out` for stage `kind` while the block runs: check it, lock it (`lock`, default `out/.synthgen.lock`),
    mark it. A folder this process (or its torchrun rank 0) has claimed is written under that claim, unchecked."""
    out = Path(out)
    key = out.resolve()
    if key in _claimed or torchrun_follower():
        yield out
        return
    check_writable(out, kind)  # before the lock, so a foreign folder gets no lock file; run keys are checked under it
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        with lock if lock is not None else hold(out / LOCK, str(out)):
            check_writable(out, kind, run_key)  # again, now that no other writer can change it
            write_marker(out, kind, run_key)
            _claimed.add(key)
            try:
                yield out
            finally:
                _claimed.discard(key)
    except BaseException:
        if created:
            remove_if_unused(out)
        raise


def remove_if_unused(folder: Path) -> None:
    """Remove a folder that holds nothing but the marker and lock files (a failed stage wrote nothing else)."""
    if any(p.name not in CONTROL_FILES for p in folder.iterdir()):
        return
    for name in CONTROL_FILES:
        (folder / name).unlink(missing_ok=True)
    folder.rmdir()


def writes(kind: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a stage's `run(cfg, inputs, out)` so that it runs only under a claim of `out` for `kind`."""

    def decorate(run: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(run)
        def claimed_run(cfg: Any, inputs: Any, out: Path, **kwargs: Any) -> Any:
            with claim(out, kind):
                return run(cfg, inputs, out, **kwargs)

        return claimed_run

    return decorate
