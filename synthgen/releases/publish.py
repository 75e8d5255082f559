"""Publish an evaluated dataset folder (the `dvc repro` output) as an append-only release.

A release holds its own copies of its files (reflinks where the file system shares extents), read-only,
so a later edit of the working folders it came from cannot change it. Under a releases root on an
object store (`s3://bucket/releases`) the release is staged in a local temporary folder, uploaded
in commit order (`synthgen.releases.upload`), and its index row written last.
"""
from __future__ import annotations

import fcntl
import json
import shutil
import stat
import tempfile
from datetime import date
from pathlib import Path

from synthgen.atomic import atomic_open, atomic_write_bytes, atomic_write_json, sha256_file
from synthgen.card import write_card
from synthgen.outputs import CONTROL_FILES, RELEASE, claim
from synthgen.releases.ids import release_id_for
from synthgen.releases.index import (
    ReleaseEntry, finish_release, finished_entry, get_release, record_release, utc_now,
)
from synthgen.releases.lock import release_lock
from synthgen.releases.upload import upload_release
from synthgen.shards import read_manifest
from synthgen.shards.manifest import MANIFEST
from synthgen.shards.progress import PROGRESS
from synthgen.stages.layout import EvalLayout
from synthgen.storage import is_url, join, open_store


def annotate_dataset(dataset_dir: str | Path, evaluation_dir: str | Path) -> None:
    """Give an evaluated dataset its quality.parquet, the gate verdict in its manifest (`status`: published |
    rejected, `gate_reasons`) and a card that shows it. Files are replaced, never edited in place."""
    dataset, evaluation = EvalLayout(Path(dataset_dir)), EvalLayout(Path(evaluation_dir))
    if dataset.root.resolve() != evaluation.root.resolve():
        atomic_write_bytes(dataset.quality, evaluation.quality.read_bytes())
    verdict = json.loads(evaluation.gate.read_text())
    manifest = read_manifest(dataset.root)
    manifest.update(status=verdict["status"], gate_reasons=verdict["reasons"])
    write_card(dataset.root, manifest)
    atomic_write_json(dataset.root / MANIFEST, manifest)


FICLONE = 0x40049409  # linux/fs.h: make the target share the source's extents (btrfs, XFS, ...)
READ_ONLY = ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)


def clone_file(source: Path, target: Path) -> None:
    """Write `target` atomically as a copy of `source`: a reflink where the file system can, else the bytes."""
    with open(source, "rb") as src, atomic_open(target) as dst:
        try:
            fcntl.ioctl(dst.fileno(), FICLONE, src.fileno())
        except OSError:
            shutil.copyfileobj(src, dst, 1 << 20)


def copy_tree(source: Path, target: Path) -> None:
    """Copy every file of `source` into `target` (not its resume receipts or lock files), manifest last."""
    files = sorted(p for p in source.rglob("*")
                   if p.is_file() and PROGRESS not in p.parts and p.name not in CONTROL_FILES)
    files.sort(key=lambda p: p.name == MANIFEST)
    for path in files:
        clone_file(path, target / path.relative_to(source))


def freeze(folder: Path) -> None:
    """Make every file of a finished release read-only."""
    for path in folder.rglob("*"):
        if path.is_file():
            path.chmod(path.stat().st_mode & READ_ONLY)


def stage_release(target: Path, dataset: Path, evaluation: Path) -> None:
    """Fill the release folder `target` from an evaluated dataset and its evaluation folder."""
    copy_tree(evaluation, target)
    copy_tree(dataset, target)
    annotate_dataset(target, target)


def publish_dataset(root: str | Path, dataset: str | Path, evaluation: str | Path, run_date: date,
                    params_hash: str | None = None) -> ReleaseEntry:
    """Make `root/<date>-<manifest sha>` from an evaluated dataset and its evaluation folder; `root` may be a URL.

    The id carries the manifest's hash, so publishing the same data again is a no-op and new data
    never overwrites an older release.
    """
    dataset, evaluation = Path(dataset), Path(evaluation)
    release_id = release_id_for(run_date, sha256_file(dataset / MANIFEST)[:12])
    existing = get_release(root, release_id)
    if existing is not None and existing.status != "running":
        return existing
    started = ReleaseEntry(release_id, "running", utc_now(), int(read_manifest(dataset)["run"]["seed"]), params_hash)
    if is_url(root):
        return publish_remote(root, started, dataset, evaluation)
    target = Path(root) / release_id
    with claim(target, RELEASE, lock=release_lock(target)):
        started = record_release(root, started)
        stage_release(target, dataset, evaluation)
        freeze(target)
        return finish_release(root, started)


def publish_remote(root: str, started: ReleaseEntry, dataset: Path, evaluation: Path) -> ReleaseEntry:
    """Stage release `started` locally, upload it under the URL `root` in commit order, then record its row."""
    with tempfile.TemporaryDirectory(prefix="synthgen-release-") as tmp:
        target = Path(tmp) / started.release_id
        stage_release(target, dataset, evaluation)
        entry = finished_entry(target, started)
        upload_release(target, open_store(join(root, started.release_id)))
    return record_release(root, entry)
