"""Releases: ids and seeds, the append-only index, the per-release lock, and the consumer's view."""
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from synthgen.atomic import atomic_write_json, sha256_file
from synthgen.errors import SynthgenError
from synthgen.imaging import encode_image
from synthgen.locks import holder_path
from synthgen.releases import (
    KEY_METRICS, SCHEMA, InvalidReleaseIdError, ReleaseEntry, ReleaseFinishedError, ReleaseIndexError,
    ReleaseLockedError, ReleaseNotFoundError, ReleasePublishedError, check_release_id, fail_release,
    finish_release, get_release, lock_path, next_release_id, open_release, read_index, record_release,
    release_id_for, release_lock, release_sort_key, resolve_dataset_path, resolve_release,
    start_release,
)
from synthgen.seeds import derive_seed
from synthgen.shards import ShardSample, ShardWriter

REPO = str(Path(__file__).resolve().parents[1])
T0 = datetime(2026, 11, 21, 2, 0, tzinfo=timezone.utc)


def write_dataset(folder, n=6, max_count=4, extra=None, seed=0):
    """A tiny shard dataset: random 8 px images, 3 classes, two samplers."""
    rng = np.random.default_rng(seed)
    with ShardWriter(folder, "synthetic", max_count=max_count) as writer:
        for i in range(n):
            pixels = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
            meta = {"seed": 100 + i, "sampler": "ddim" if i % 2 else "ddpm", "steps": 10 * (1 + i % 2),
                    "eta": 0.0, "guidance_scale": 2.0, "guidance_method": "cfg_rescale"}
            writer.write(ShardSample(f"synthetic-{i:09d}", encode_image(pixels), i % 3, f"class{i % 3}", 8, 8,
                                     "png", meta))
        return writer.finish_dataset(config={"sample": {"seed": seed}}, extra=extra)


def write_release(root, release_id, status="published", n=6, metrics=None, now=T0):
    """Make, evaluate and record a release as the scheduled flow would."""
    root = Path(root)
    started = start_release(root, release_id, derive_seed(0, "release/seed", release_id), "params-1", now=now)
    reasons = [] if status == "published" else ["fd_ratio = 9 fails: must be <= 4"]
    write_dataset(root / release_id, n=n, extra={"status": status, "gate_reasons": reasons})
    atomic_write_json(root / release_id / "metrics.json",
                      metrics or {"conditional_accuracy": 0.9, "fd_ratio": 1.5, "near_duplicate_fraction": 0.0})
    return finish_release(root, started, finished_at=now + timedelta(minutes=5))


# ---- ids and seeds ------------------------------------------------------------------------------

def test_release_id_is_the_run_date_with_an_optional_suffix():
    assert release_id_for(date(2026, 11, 21)) == "2026-11-21"
    assert release_id_for(datetime(2026, 11, 21, 23, 59, tzinfo=timezone.utc)) == "2026-11-21"
    assert release_id_for(date(2026, 11, 21), 2) == "2026-11-21-2"
    assert release_id_for(date(2026, 11, 21), "hotfix") == "2026-11-21-hotfix"
    with pytest.raises(InvalidReleaseIdError, match="a-z 0-9"):
        release_id_for(date(2026, 11, 21), "../x")
    for bad in ["2026-13-01", "2026-11-21-", "../2026-11-21", "2026-11-21-A", "latest"]:
        with pytest.raises(SynthgenError, match="is not YYYY-MM-DD"):
            check_release_id(bad)


def test_releases_sort_by_date_then_suffix():
    ids = ["2026-11-22", "2026-11-21-10", "2026-11-21-b", "2026-11-21", "2026-11-21-2"]
    assert sorted(ids, key=release_sort_key) == ["2026-11-21", "2026-11-21-2", "2026-11-21-10", "2026-11-21-b",
                                                 "2026-11-22"]


# ---- the index ----------------------------------------------------------------------------------

def test_a_resumed_release_updates_its_row_and_keeps_created_at(tmp_path):
    first = start_release(tmp_path, "2026-11-21", 7, "params-1", now=T0)
    fail_release(tmp_path, first, "sample: disk full\n  at shard 3", finished_at=T0 + timedelta(minutes=1))
    failed = get_release(tmp_path, "2026-11-21")
    assert failed.status == "failed" and failed.reason == "sample: disk full at shard 3"

    resumed = start_release(tmp_path, "2026-11-21", 7, "params-1", now=T0 + timedelta(hours=1))
    assert [e.release_id for e in read_index(tmp_path)] == ["2026-11-21"]
    assert resumed.status == "running" and resumed.created_at == T0
    assert resumed.finished_at is None and resumed.reason is None


def test_resuming_with_other_params_is_refused(tmp_path):
    start_release(tmp_path, "2026-11-21", 7, "params-1", now=T0)
    with pytest.raises(ReleaseIndexError, match="started with seed 7 and params params-1"):
        start_release(tmp_path, "2026-11-21", 8, "params-1", now=T0)


def test_index_has_the_fixed_schema_and_rows_in_release_order(tmp_path):
    write_release(tmp_path, "2026-11-22")
    write_release(tmp_path, "2026-11-21", status="rejected")
    start_release(tmp_path, "2026-11-21-2", 1, None, now=T0)
    table = pq.read_table(tmp_path / "index.parquet")
    assert table.schema.equals(SCHEMA)
    assert table["release_id"].to_pylist() == ["2026-11-21", "2026-11-21-2", "2026-11-22"]
    assert table["status"].to_pylist() == ["rejected", "running", "published"]


def test_finished_release_records_counts_metrics_and_checksum(tmp_path):
    entry = write_release(tmp_path, "2026-11-21", metrics={"conditional_accuracy": 0.75, "fd_ratio": float("nan"),
                                                           "fd": 3.0, "not_a_column": 1.0})
    assert entry.status == "published" and entry.reason is None
    assert (entry.num_images, entry.num_shards) == (6, 2)
    assert entry.seed == derive_seed(0, "release/seed", "2026-11-21")
    assert entry.manifest_sha256 == sha256_file(tmp_path / "2026-11-21" / "manifest.json")
    assert entry.metrics["conditional_accuracy"] == 0.75 and entry.metrics["fd"] == 3.0
    assert entry.metrics["fd_ratio"] is None and entry.metrics["kid"] is None  # NaN and absent are null
    assert read_index(tmp_path) == [entry]


def test_an_index_written_before_a_metric_column_existed_reads_it_as_null(tmp_path):
    entry = write_release(tmp_path, "2026-11-21", metrics={"conditional_accuracy": 0.75, "utility_gain_smallest_n": 0.2})
    assert entry.metrics["utility_gain_smallest_n"] == 0.2 and entry.metrics["utility_gain_largest_n"] is None
    older = pq.read_table(tmp_path / "index.parquet").drop(["utility_gain_smallest_n", "utility_gain_largest_n"])
    pq.write_table(older, tmp_path / "index.parquet")
    (stored,) = read_index(tmp_path)
    assert stored.metrics["utility_gain_smallest_n"] is None and stored.metrics["conditional_accuracy"] == 0.75
    pq.write_table(older.drop(["seed"]), tmp_path / "index.parquet")
    with pytest.raises(ReleaseIndexError, match=r"lacks the columns \['seed'"):
        read_index(tmp_path)


def test_the_filter_acceptance_rate_is_an_index_column_null_without_a_filter_and_in_older_indexes(tmp_path):
    filtered = write_release(tmp_path, "2026-11-21", metrics={"conditional_accuracy": 0.9, "filter_acceptance_rate": 0.75,
                                                              "filter_acceptance_rate_per_class": {"circle": 0.75}})
    unfiltered = write_release(tmp_path, "2026-11-22")
    assert filtered.metrics["filter_acceptance_rate"] == 0.75 and unfiltered.metrics["filter_acceptance_rate"] is None
    older = pq.read_table(tmp_path / "index.parquet").drop(["filter_acceptance_rate"])
    pq.write_table(older, tmp_path / "index.parquet")
    assert [e.metrics["filter_acceptance_rate"] for e in read_index(tmp_path)] == [None, None]


def test_rejected_release_records_its_reasons(tmp_path):
    entry = write_release(tmp_path, "2026-11-21", status="rejected")
    assert entry.status == "rejected" and "fd_ratio" in entry.reason


def test_a_published_release_is_never_changed(tmp_path):
    published = write_release(tmp_path, "2026-11-21")
    changed = replace(published, metrics={**published.metrics, "fd_ratio": 9.0})
    with pytest.raises(ReleasePublishedError, match="release 2026-11-21 is published and cannot be changed .*fd_ratio"):
        record_release(tmp_path, changed)
    with pytest.raises(ReleasePublishedError, match="status"):
        record_release(tmp_path, replace(published, status="failed"))
    # Recording the same content again (a later finished_at) is a no-op, not a conflict.
    assert record_release(tmp_path, replace(published, finished_at=T0 + timedelta(days=1))) == published
    assert read_index(tmp_path) == [published]


def test_a_finished_release_is_not_made_again(tmp_path):
    write_release(tmp_path, "2026-11-21", status="rejected")
    with pytest.raises(ReleaseFinishedError, match=r"already rejected.*2026-11-21-2"):
        start_release(tmp_path, "2026-11-21", derive_seed(0, "release/seed", "2026-11-21"), "params-1")
    assert next_release_id(tmp_path, date(2026, 11, 22)) == "2026-11-22"


def test_entries_reject_bad_values():
    with pytest.raises(ValueError, match="status 'done'"):
        ReleaseEntry("2026-11-21", "done", T0, 1)
    with pytest.raises(ValueError, match="timezone-aware"):
        ReleaseEntry("2026-11-21", "running", datetime(2026, 11, 21), 1)
    with pytest.raises(ValueError, match="not index columns"):
        ReleaseEntry("2026-11-21", "running", T0, 1, metrics={"accuracy": 1.0})
    assert set(ReleaseEntry("2026-11-21", "running", T0, 1).metrics) == set(KEY_METRICS)


def test_concurrent_writers_lose_no_rows(tmp_path):
    def record(day):
        for hour in range(5):
            rid = release_id_for(date(2026, 11, day), hour + 1)
            record_release(tmp_path, ReleaseEntry(rid, "running", T0, hour))

    threads = [threading.Thread(target=record, args=(day,)) for day in (21, 22, 23, 24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(read_index(tmp_path)) == 20
    assert not holder_path(tmp_path / "index.parquet.lock").exists()  # the holder's note goes with the lock


# ---- the lock -----------------------------------------------------------------------------------

HOLD = """
import sys
from synthgen.releases import release_lock
with release_lock(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.read()
"""


def start_holder(release_dir):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(release_dir)], cwd=REPO, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_lock_refuses_a_concurrent_run_from_another_process(tmp_path):
    release_dir = tmp_path / "2026-11-21"
    holder = start_holder(release_dir)
    try:
        with pytest.raises(ReleaseLockedError) as refused:
            with release_lock(release_dir):
                pass
        message = str(refused.value)
        assert f"pid {holder.pid} on host {socket.gethostname()}" in message and "release 2026-11-21" in message
        assert "\n" not in message
    finally:
        holder.communicate("")  # closing stdin lets the holder leave its `with` block
    assert holder.returncode == 0 and not holder_path(lock_path(release_dir)).exists()
    with release_lock(release_dir):
        assert json.loads(holder_path(lock_path(release_dir)).read_text())["pid"] == os.getpid()


def test_lock_is_released_on_error_and_is_not_reentrant(tmp_path):
    release_dir = tmp_path / "2026-11-21"
    with pytest.raises(RuntimeError):
        with release_lock(release_dir):
            with pytest.raises(ReleaseLockedError):
                with release_lock(release_dir):
                    pass
            raise RuntimeError("stage failed")
    with release_lock(release_dir):
        pass


def test_a_killed_holder_leaves_no_lock_behind(tmp_path):
    """The OS drops the lock of a dead process: no pid to check, no stale lock to take over."""
    release_dir = tmp_path / "2026-11-21"
    holder = start_holder(release_dir)
    holder.send_signal(signal.SIGKILL)
    holder.communicate()
    assert holder_path(lock_path(release_dir)).exists()  # its note is left behind, and means nothing
    with release_lock(release_dir):
        assert json.loads(holder_path(lock_path(release_dir)).read_text())["pid"] == os.getpid()


# ---- consumers ----------------------------------------------------------------------------------

@pytest.fixture
def releases(tmp_path):
    write_release(tmp_path, "2026-11-19")
    write_release(tmp_path, "2026-11-20", n=4)
    write_release(tmp_path, "2026-11-21", status="rejected")
    start_release(tmp_path, "2026-11-22", 1, "params-1", now=T0)
    return tmp_path


def test_resolve_picks_the_newest_published_release(releases):
    assert resolve_release(releases) == releases / "2026-11-20"
    assert resolve_release(releases, "2026-11-19") == releases / "2026-11-19"
    assert resolve_dataset_path(releases) == releases / "2026-11-20"
    assert resolve_dataset_path(releases / "2026-11-19") == releases / "2026-11-19"
    assert len(list(open_release(releases, decode="raw"))) == 4


def test_resolve_refuses_unpublished_missing_and_absent_releases(releases, tmp_path_factory):
    with pytest.raises(ReleaseNotFoundError, match="2026-11-21 is rejected, not published; latest published: "
                                                   "2026-11-19, 2026-11-20"):
        resolve_release(releases, "2026-11-21")
    with pytest.raises(ReleaseNotFoundError, match="2026-11-22 is running"):
        resolve_release(releases, "2026-11-22")
    with pytest.raises(ReleaseNotFoundError, match="2026-12-01 is not in"):
        resolve_release(releases, "2026-12-01")
    with pytest.raises(ReleaseNotFoundError, match="release='2026-11-20' needs a releases root"):
        resolve_dataset_path(releases / "2026-11-20", release="2026-11-20")
    (releases / "2026-11-20" / "manifest.json").unlink()
    with pytest.raises(ReleaseNotFoundError, match="has no manifest.json"):
        resolve_release(releases)
    empty = tmp_path_factory.mktemp("empty")
    start_release(empty, "2026-11-21", 1, None)
    with pytest.raises(ReleaseNotFoundError, match="no published release yet"):
        resolve_release(empty)
