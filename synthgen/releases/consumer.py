"""How downstream teams pick a release: the newest published one, or one pinned by its id.

A releases root is a local folder or an fsspec URL (`s3://bucket/releases`); a release under a URL
root is read where it lies.
"""
from __future__ import annotations

from pathlib import Path

from synthgen.errors import SynthgenError
from synthgen.releases.index import INDEX, ReleaseEntry, read_index
from synthgen.shards.manifest import MANIFEST
from synthgen.storage import is_url, join, open_store

_LISTED = 5  # published ids named in an error message


class ReleaseNotFoundError(SynthgenError):
    """No published release matches, or its folder is missing."""


class ReleaseChangedError(SynthgenError):
    """A release's manifest.json is not the one its index row recorded."""


def is_releases_root(path: str | Path) -> bool:
    """A releases root is a folder (or URL) holding `index.parquet`; a dataset folder holds `manifest.json`."""
    return open_store(path).exists(INDEX)


def _published(entries: list[ReleaseEntry]) -> list[ReleaseEntry]:
    return [e for e in entries if e.status == "published"]


def _pick(root: str | Path, entries: list[ReleaseEntry], release_id: str | None) -> ReleaseEntry:
    published = _published(entries)
    choices = ", ".join(e.release_id for e in published[-_LISTED:]) or "none"
    if release_id is None:
        if not published:
            raise ReleaseNotFoundError(f"{root} has no published release yet ({len(entries)} releases in {INDEX})")
        return published[-1]
    entry = next((e for e in entries if e.release_id == release_id), None)
    if entry is None:
        raise ReleaseNotFoundError(f"release {release_id} is not in {join(root, INDEX)}; latest published: {choices}")
    if entry.status != "published":
        raise ReleaseNotFoundError(f"release {release_id} is {entry.status}, not published; latest published: {choices}")
    return entry


def manifest_mismatch(folder: str | Path, entry: ReleaseEntry) -> str | None:
    """Why release `folder`'s manifest.json is not the one `entry` recorded, or None when it is (or none was)."""
    if entry.manifest_sha256 is None:
        return None
    store = open_store(folder)
    if not store.exists(MANIFEST):
        return f"release {entry.release_id}: {store.url(MANIFEST)} is missing; restore it (e.g. dvc pull, or publish again)"
    actual = store.sha256(MANIFEST)
    if actual == entry.manifest_sha256:
        return None
    return (f"release {entry.release_id}: {store.url(MANIFEST)} has sha256 {actual[:16]}, the index recorded "
            f"{entry.manifest_sha256[:16]}; it changed after it was finished: restore it (e.g. dvc pull)")


def resolve_release(root: str | Path, release_id: str | None = None) -> Path | str:
    """The folder (or URL) of the newest published release under `root`, or of the pinned `release_id`, once
    its manifest.json is checked against the sha256 the index recorded."""
    root = root if is_url(root) else Path(root)
    if not is_releases_root(root):
        raise ReleaseNotFoundError(f"{root} is not a releases root: it has no {INDEX}")
    entry = _pick(root, read_index(root), release_id)
    folder = join(root, entry.release_id) if is_url(root) else root / entry.release_id
    if not open_store(folder).exists(MANIFEST):
        raise ReleaseNotFoundError(f"release {entry.release_id} is published but {folder} has no {MANIFEST}; "
                                   "restore it (e.g. dvc pull, or upload it again)")
    mismatch = manifest_mismatch(folder, entry)
    if mismatch:
        raise ReleaseChangedError(mismatch)
    return folder


def resolve_dataset_path(path: str | Path, release: str | None = None) -> Path | str:
    """A dataset folder (or URL) as given, or the chosen release's folder when `path` is a releases root."""
    path = path if is_url(path) else Path(path)
    if is_releases_root(path):
        return resolve_release(path, release)
    if release is not None:
        raise ReleaseNotFoundError(f"release={release!r} needs a releases root (a folder with {INDEX}); {path} is not one")
    return path


def open_release(root: str | Path, release_id: str | None = None, **open_dataset_kwargs):
    """`open_dataset` on the newest published release (or the pinned one); kwargs: where, shuffle, seed, ..."""
    from synthgen.shards.reader import open_dataset  # late: the reader may resolve paths through this module

    return open_dataset(resolve_release(root, release_id), **open_dataset_kwargs)
