"""Publish an evaluated dataset folder (the `dvc repro` output) as an append-only release."""
from __future__ import annotations

import json
import os
import shutil
from datetime import date
from pathlib import Path

from synthgen.atomic import atomic_write_bytes, atomic_write_json, sha256_file
from synthgen.card import write_card
from synthgen.releases.ids import release_id_for
from synthgen.releases.index import ReleaseEntry, finish_release, get_release, record_release, utc_now
from synthgen.releases.lock import release_lock
from synthgen.shards import read_manifest
from synthgen.shards.manifest import MANIFEST
from synthgen.shards.progress import PROGRESS
from synthgen.stages.layout import EvalLayout


def annotate_dataset(dataset_dir: str | Path, evaluation_dir: str | Path) -> None:
    """Give an evaluated dataset its quality.parquet, the gate verdict in its manifest (`status`: published |
    rejected, `gate_reasons`) and a card that shows it. Files are replaced, never edited in place."""
    dataset, evaluation = EvalLayout(Path(dataset_dir)), EvalLayout(Path(evaluation_dir))
    if dataset.root.resolve() != evaluation.root.resolve():
        atomic_write_bytes(dataset.quality, evaluation.quality.read_bytes())
    verdict = json.loads(evaluation.gate.read_text())
    manifest = read_manifest(dataset.root)
    manifest.update(status=verdict["status"], gate_reasons=verdict["reasons"])
    atomic_write_json(dataset.root / MANIFEST, manifest)
    write_card(dataset.root)


def copy_tree(source: Path, target: Path) -> None:
    """Hard-link (or copy, across file systems) every file of `source` into `target`, manifest last."""
    files = sorted(p for p in source.rglob("*") if p.is_file() and PROGRESS not in p.parts)
    files.sort(key=lambda p: p.name == MANIFEST)
    for path in files:
        dest = target / path.relative_to(source)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.unlink(missing_ok=True)
        try:
            os.link(path, dest)
        except OSError:
            shutil.copy2(path, dest)


def publish_dataset(root: str | Path, dataset: str | Path, evaluation: str | Path, run_date: date,
                    params_hash: str | None = None) -> ReleaseEntry:
    """Make `root/<date>-<manifest sha>` from an evaluated dataset and its evaluation folder.

    The id carries the manifest's hash, so publishing the same data again is a no-op and new data
    never overwrites an older release.
    """
    root, dataset, evaluation = Path(root), Path(dataset), Path(evaluation)
    manifest = read_manifest(dataset)
    release_id = release_id_for(run_date, sha256_file(dataset / MANIFEST)[:12])
    existing = get_release(root, release_id)
    if existing is not None and existing.status != "running":
        return existing
    target = root / release_id
    with release_lock(target):
        started = record_release(root, ReleaseEntry(release_id, "running", utc_now(), int(manifest["run"]["seed"]),
                                                    params_hash))
        copy_tree(evaluation, target)
        copy_tree(dataset, target)
        annotate_dataset(target, target)
        return finish_release(root, started)
