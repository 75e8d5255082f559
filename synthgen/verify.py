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
from synthgen.releases.index import FINAL, ReleaseEntry, get_release, read_index
from synthgen.shards.manifest import MANIFEST, METADATA, file_problem, read_manifest
from synthgen.storage import is_url, join, open_store, split_location


@dataclass(frozen=True)
class Verification:
    path: str | Path
    checked: int  # files compared with a recorded checksum
    failures: tuple[str, ...]  # one line each

    @property
    def ok(self) -> bool:
        return not self.failures


def dataset_failures(folder: str | Path, manifest: Mapping[str, Any]) -> list[str]:
    """Every shard (size, sha256) and metadata.parquet (sha256) of `folder` against its manifest."""
    store = open_store(folder)
    checks = [(s["name"], s["bytes"], s["sha256"]) for s in manifest["shards"]]
    checks.append((METADATA, None, manifest["metadata"]["sha256"]))
    return [f"{store.url(name)} {problem}" for name, size, sha in checks
            if (problem := file_problem(store, name, size, sha))]


def release_entry(folder: str | Path) -> ReleaseEntry | None:
    """The index row of the release `folder` (a folder or URL), or None when it is no release."""
    parent, name = split_location(folder)
    return get_release(parent.location, name) if is_releases_root(parent.location) else None


def release_failures(folder: str | Path) -> list[str]:
    """A release folder's manifest.json against the sha256 in its index row (nothing for other folders)."""
    entry = release_entry(folder)
    mismatch = manifest_mismatch(folder, entry) if entry else None
    return [mismatch] if mismatch else []


def verify_folder(folder: str | Path) -> Verification:
    """A dataset folder or a release, every byte."""
    releases = release_failures(folder)  # a release's missing manifest is named by its release
    try:
        manifest = read_manifest(folder)
    except (SynthgenError, ValueError) as e:
        return Verification(folder, 1, tuple(releases) or (f"{folder}: {e}",))
    return Verification(folder, manifest["num_shards"] + 2, (*releases, *dataset_failures(folder, manifest)))


def verify_path(path: str | Path) -> Verification:
    """A dataset folder or a release, or every finished release of a releases root; each may be a URL."""
    path = path if is_url(path) else Path(path)
    if is_releases_root(path):
        parts = [verify_folder(join(path, e.release_id)) for e in read_index(path) if e.status in FINAL]
        return Verification(path, sum(p.checked for p in parts), tuple(f for p in parts for f in p.failures))
    if not open_store(path).exists(MANIFEST):
        raise SynthgenError(f"{path} is neither a dataset folder (no {MANIFEST}) nor a releases root (no index.parquet)")
    return verify_folder(path)


def format_verification(result: Verification) -> str:
    """One line per failure, then the summary line."""
    summary = (f"{result.path}: ok, {result.checked} files match their checksums" if result.ok else
               f"{result.path}: FAILED, {len(result.failures)} of {result.checked} checks failed")
    return "\n".join([*result.failures, summary]) + "\n"
