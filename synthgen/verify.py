"""`synthgen verify`: a dataset folder, a release or every finished release, checked byte for byte.

A dataset's shards (size and sha256) and its metadata.parquet (sha256) are checked against its
manifest.json; a release's manifest.json is also checked against the sha256 its index row recorded.
Each failure is one line naming the file and what is wrong.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from synthgen.errors import SynthgenError
from synthgen.releases.consumer import is_releases_root, manifest_mismatch
from synthgen.releases.index import FINAL, get_release, read_index
from synthgen.shards.manifest import MANIFEST, METADATA, read_manifest
from synthgen.storage import join, split_location


@dataclass(frozen=True)
class Verification:
    path: Path
    checked: int  # files compared with a recorded checksum
    failures: tuple[str, ...]  # one line each

    @property
    def ok(self) -> bool:
        return not self.failures


def file_failure(path: str | Path, sha256: str, size: int | None = None) -> str | None:
    """Why `path` (a local path or URL) does not have the recorded size and sha256, or None when it does."""
    store, name = split_location(path)
    if not store.exists(name):
        return f"{path}: missing"
    actual = store.size(name)
    if size is not None and actual != size:
        return f"{path}: {actual} bytes, the manifest records {size}"
    if store.sha256(name) != sha256:
        return f"{path}: sha256 differs from the manifest"
    return None


def dataset_failures(folder: str | Path, manifest: Mapping[str, Any]) -> list[str]:
    """Every shard (size, sha256) and metadata.parquet (sha256) of `folder` against its manifest."""
    checks = [(join(folder, s["name"]), s["sha256"], s["bytes"]) for s in manifest["shards"]]
    checks.append((join(folder, METADATA), manifest["metadata"]["sha256"], None))
    return [f for f in (file_failure(*check) for check in checks) if f]


def release_failures(folder: Path) -> list[str]:
    """A release folder's manifest.json against the sha256 in its index row (nothing for other folders)."""
    entry = get_release(folder.parent, folder.name) if is_releases_root(folder.parent) else None
    mismatch = manifest_mismatch(folder, entry) if entry else None
    return [mismatch] if mismatch else []


def verify_folder(folder: Path) -> Verification:
    """A dataset folder or a release, every byte."""
    try:
        manifest = read_manifest(folder)
    except (SynthgenError, ValueError) as e:
        return Verification(folder, 0, (f"{folder}: {e}",))
    failures = [*release_failures(folder), *dataset_failures(folder, manifest)]
    return Verification(folder, manifest["num_shards"] + 2, tuple(failures))


def verify_path(path: str | Path) -> Verification:
    """A dataset folder or a release, or every finished release of a releases root."""
    path = Path(path)
    if is_releases_root(path):
        parts = [verify_folder(path / e.release_id) for e in read_index(path) if e.status in FINAL]
        return Verification(path, sum(p.checked for p in parts), tuple(f for p in parts for f in p.failures))
    if not (path / MANIFEST).is_file():
        raise SynthgenError(f"{path} is neither a dataset folder (no {MANIFEST}) nor a releases root (no index.parquet)")
    return verify_folder(path)


def format_verification(result: Verification) -> str:
    """One line per failure, then the summary line."""
    summary = (f"{result.path}: ok, {result.checked} files match their checksums" if result.ok else
               f"{result.path}: FAILED, {len(result.failures)} of {result.checked} checks failed")
    return "\n".join([*result.failures, summary]) + "\n"
