"""`releases/index.parquet`: one row per release, with its status, counts, key metrics and checksum.

The index is append-only: a release's row is upserted while it runs (a crashed run's row is
updated when it resumes, never duplicated), and once published its row can never change. Every
write rewrites the whole file atomically, with a fixed schema and rows in release order, under a
short lock so two releases finishing at once cannot lose each other's rows.
"""
from __future__ import annotations

import itertools
import json
import math
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping

import pyarrow as pa
import pyarrow.parquet as pq

from synthgen.atomic import sha256_file
from synthgen.errors import SynthgenError
from synthgen.metrics.specs import INDEX_METRICS
from synthgen.releases.ids import check_release_id, release_id_for, release_sort_key
from synthgen.releases.lock import index_lock
from synthgen.shards.index import table_bytes
from synthgen.shards.manifest import MANIFEST, read_manifest
from synthgen.stages.layout import METRICS, EvalLayout
from synthgen.storage import join, open_store, split_location

INDEX = "index.parquet"
METRICS_FILE = METRICS  # read by synthgen.inspect
Status = Literal["running", "published", "rejected", "failed"]
STATUSES = ("running", "published", "rejected", "failed")
FINAL = ("published", "rejected")  # a gate verdict: the release is done and is not made again
KEY_METRICS = INDEX_METRICS  # metrics.json keys copied into the index; absent ones are null
TIMESTAMP = pa.timestamp("us", tz="UTC")
SCHEMA = pa.schema(
    [
        pa.field("release_id", pa.string(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("created_at", TIMESTAMP, nullable=False),  # when the release was first started
        ("finished_at", TIMESTAMP),  # when it was last published, rejected or failed
        pa.field("seed", pa.int64(), nullable=False),  # the release's sample.seed (synthgen/seeds.py "release/seed")
        ("params_hash", pa.string()),
        ("num_images", pa.int64()),
        ("num_shards", pa.int64()),
        *[(name, pa.float64()) for name in KEY_METRICS],
        ("manifest_sha256", pa.string()),  # sha256 of the release's final manifest.json
        ("reason", pa.string()),  # why it was rejected or failed, one line
    ]
)


class ReleaseIndexError(SynthgenError):
    """The index cannot be read, or a change to it would break append-only semantics."""


class ReleasePublishedError(ReleaseIndexError):
    """A published release would be changed."""


class ReleaseFinishedError(ReleaseIndexError):
    """A release that already has a gate verdict would be made again."""


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _as_metric(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return None if math.isnan(value) else float(value)


def _check_aware(name: str, value: datetime | None) -> None:
    if value is not None and value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (use synthgen.releases.index.utc_now())")


@dataclass(frozen=True)
class ReleaseEntry:
    """One row of the index."""

    release_id: str
    status: Status
    created_at: datetime  # timezone-aware
    seed: int
    params_hash: str | None = None
    finished_at: datetime | None = None  # timezone-aware
    num_images: int | None = None
    num_shards: int | None = None
    metrics: Mapping[str, float | None] = field(default_factory=dict)  # KEY_METRICS names only
    manifest_sha256: str | None = None
    reason: str | None = None

    def __post_init__(self) -> None:
        check_release_id(self.release_id)
        if self.status not in STATUSES:
            raise ValueError(f"release status {self.status!r} is not one of {STATUSES}")
        _check_aware("created_at", self.created_at)
        _check_aware("finished_at", self.finished_at)
        unknown = set(self.metrics) - set(KEY_METRICS)
        if unknown:
            raise ValueError(f"metrics {sorted(unknown)} are not index columns; choose from {KEY_METRICS}")
        # Every key present, NaN as null: equal measurements compare equal.
        object.__setattr__(self, "metrics", {m: _as_metric(self.metrics.get(m)) for m in KEY_METRICS})

    def to_row(self) -> dict[str, Any]:
        row = asdict(self)
        return {**row, **row.pop("metrics")}

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> "ReleaseEntry":
        scalars = {k: v for k, v in row.items() if k not in KEY_METRICS}
        return cls(**scalars, metrics={m: row[m] for m in KEY_METRICS})

    def content(self) -> dict[str, Any]:
        """Everything but the timestamps: what must never change once published."""
        row = self.to_row()
        del row["created_at"], row["finished_at"]
        return row


def read_index(root: str | Path) -> list[ReleaseEntry]:
    """Every release under the releases root `root` (a folder or URL), oldest first; empty if there is no index yet."""
    store, path = open_store(root), join(root, INDEX)
    if not store.exists(INDEX):
        return []
    table = pq.read_table(pa.BufferReader(store.read_bytes(INDEX)))
    missing = [n for n in SCHEMA.names if n not in table.column_names]
    if set(missing) - set(KEY_METRICS):
        raise ReleaseIndexError(f"{path} is not a release index: it lacks the columns {missing}")
    for name in missing:  # a metric column added after this index was written: null for its releases
        table = table.append_column(name, pa.nulls(len(table), pa.float64()))
    entries = [ReleaseEntry.from_row(r) for r in table.select(SCHEMA.names).cast(SCHEMA).to_pylist()]
    return sorted(entries, key=lambda e: release_sort_key(e.release_id))


def write_index(root: str | Path, entries: Iterable[ReleaseEntry]) -> None:
    """Rewrite the index atomically, rows in release order. Call only under the index lock."""
    rows = [e.to_row() for e in sorted(entries, key=lambda e: release_sort_key(e.release_id))]
    open_store(root).put_atomic(INDEX, table_bytes(pa.Table.from_pylist(rows, schema=SCHEMA)))


def get_release(root: str | Path, release_id: str) -> ReleaseEntry | None:
    return next((e for e in read_index(root) if e.release_id == release_id), None)


def _merge(old: ReleaseEntry | None, new: ReleaseEntry) -> ReleaseEntry:
    """The row to store: a published row never changes; any other keeps its first created_at."""
    if old is None:
        return new
    if old.status == "published":
        changed = sorted(k for k, v in new.content().items() if old.content()[k] != v)
        if changed:
            raise ReleasePublishedError(
                f"release {old.release_id} is published and cannot be changed (this would change {', '.join(changed)}); "
                "make a new release instead")
        return old
    return replace(new, created_at=old.created_at)


def record_release(root: str | Path, entry: ReleaseEntry) -> ReleaseEntry:
    """Upsert `entry`'s row in `root/index.parquet` and return the row as stored."""
    with index_lock(root):
        entries = {e.release_id: e for e in read_index(root)}
        old = entries.get(entry.release_id)
        stored = _merge(old, entry)
        if stored != old:
            entries[stored.release_id] = stored
            write_index(root, entries.values())
    return stored


def next_release_id(root: str | Path, run_date: date) -> str:
    """The run date's id if no release has it yet, else the first free `<date>-2`, `<date>-3`, ..."""
    taken = {e.release_id for e in read_index(root)}
    candidates = itertools.chain([release_id_for(run_date)], (release_id_for(run_date, n) for n in itertools.count(2)))
    return next(c for c in candidates if c not in taken)


def start_release(root: str | Path, release_id: str, seed: int, params_hash: str | None,
                  now: datetime | None = None) -> ReleaseEntry:
    """Record `release_id` as running: a new release, or the resumption of its crashed or failed run.

    Call it while holding `release_lock`. A release with a gate verdict is never made again, and
    a resumed run must have the seed and params of the run it resumes.
    """
    old = get_release(root, release_id)
    if old is not None and old.status in FINAL:
        raise ReleaseFinishedError(
            f"release {release_id} is already {old.status}; releases are append-only, so make another "
            f"(e.g. {next_release_id(root, date.fromisoformat(release_id[:10]))})")
    if old is not None and (old.seed, old.params_hash) != (seed, params_hash):
        raise ReleaseIndexError(
            f"release {release_id} was started with seed {old.seed} and params {old.params_hash}, this run has "
            f"seed {seed} and params {params_hash}; resume it with the same params, or make another release")
    return record_release(root, ReleaseEntry(release_id, "running", now or utc_now(), seed, params_hash))


def _read_json(path: str | Path) -> dict[str, Any]:
    store, name = split_location(path)
    return json.loads(store.read_bytes(name)) if store.exists(name) else {}


def gate_verdict(release_dir: str | Path) -> tuple[str, list[str]] | None:
    """(status, reasons) from manifest.json's `status` and `gate_reasons`, else from gate.json; None if neither."""
    manifest = read_manifest(release_dir)
    if manifest.get("status") in FINAL:
        return manifest["status"], list(manifest.get("gate_reasons") or [])
    gate = _read_json(join(release_dir, EvalLayout.GATE))
    if gate.get("status") in FINAL:
        return gate["status"], list(gate.get("reasons") or [])
    return None


def key_metrics(release_dir: str | Path) -> dict[str, float | None]:
    """The index's metric columns from the release's metrics.json (top-level keys; absent ones null)."""
    metrics = _read_json(join(release_dir, METRICS_FILE))
    return {m: _as_metric(metrics.get(m)) for m in KEY_METRICS}


def finished_entry(release_dir: str | Path, started: ReleaseEntry, finished_at: datetime | None = None) -> ReleaseEntry:
    """`started`'s row completed from the evaluated release folder: verdict, counts, metrics, checksum."""
    release_dir = Path(release_dir)
    manifest = read_manifest(release_dir)
    verdict = gate_verdict(release_dir)
    if verdict is None:
        raise ReleaseIndexError(
            f"release {started.release_id} has no gate verdict (no status in {MANIFEST}, no {EvalLayout.GATE}); evaluate it first")
    status, reasons = verdict
    return replace(
        started, status=status, finished_at=finished_at or utc_now(), num_images=manifest["num_samples"],
        num_shards=manifest["num_shards"], metrics=key_metrics(release_dir),
        manifest_sha256=sha256_file(release_dir / MANIFEST), reason="; ".join(reasons) or None,
    )


def finish_release(root: str | Path, started: ReleaseEntry, finished_at: datetime | None = None) -> ReleaseEntry:
    """Record the verdict of the evaluated release `root/<release_id>`."""
    return record_release(root, finished_entry(Path(root) / started.release_id, started, finished_at))


def fail_release(root: str | Path, started: ReleaseEntry, reason: str, finished_at: datetime | None = None) -> ReleaseEntry:
    """Record that the run of `started` failed; the next run of the same release resumes it."""
    one_line = " ".join(str(reason).split())
    return record_release(root, replace(started, status="failed", finished_at=finished_at or utc_now(), reason=one_line))
