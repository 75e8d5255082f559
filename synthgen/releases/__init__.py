"""Scheduled incremental releases: ids and seeds from the run date, an append-only index, a lock
per release, and the consumer's view (the newest published release, or a pinned one).

A release is a shard-store dataset folder `releases/<release-id>/` with its own manifest and gate
verdict; `releases/index.parquet` lists every release.
"""
from synthgen.releases.consumer import (
    ReleaseChangedError, ReleaseNotFoundError, is_releases_root, manifest_mismatch, open_release, resolve_dataset_path,
    resolve_release,
)
from synthgen.releases.ids import (
    InvalidReleaseIdError, check_release_id, release_id_for, release_sort_key,
)
from synthgen.releases.index import (
    INDEX, KEY_METRICS, SCHEMA, STATUSES, ReleaseEntry, ReleaseFinishedError, ReleaseIndexError,
    ReleasePublishedError, fail_release, finish_release, finished_entry, gate_verdict, get_release,
    next_release_id, read_index, record_release, start_release, utc_now,
)
from synthgen.releases.lock import LockHeldError, ReleaseLockedError, lock_path, release_lock

__all__ = [
    "INDEX", "KEY_METRICS", "SCHEMA", "STATUSES", "InvalidReleaseIdError", "LockHeldError", "ReleaseEntry",
    "ReleaseChangedError", "ReleaseFinishedError", "ReleaseIndexError", "ReleaseLockedError", "ReleaseNotFoundError",
    "ReleasePublishedError", "check_release_id", "fail_release", "finish_release", "finished_entry",
    "gate_verdict", "get_release", "is_releases_root", "lock_path", "manifest_mismatch", "next_release_id",
    "open_release", "read_index", "record_release", "release_id_for", "release_lock", "release_sort_key",
    "resolve_dataset_path", "resolve_release", "start_release", "utc_now",
]
