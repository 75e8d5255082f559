"""Releases on object storage: publish to an `s3://` releases root on the loopback S3 server, read, inspect, verify."""
import json
import os
from datetime import date
from pathlib import Path

import pytest

import synthgen
import synthgen.releases.lock as lock
from synthgen.atomic import atomic_write_json
from synthgen.locks import LockHeldError
from synthgen.outputs import claim
from synthgen.releases import ReleaseChangedError, ReleaseNotFoundError, open_release, read_index, resolve_release
from synthgen.releases.publish import publish_dataset
from synthgen.releases.upload import commit_rank
from synthgen.storage import Store, open_store
from tests.test_inspect import cli
from tests.test_object_storage import objects
from tests.test_releases import write_dataset

DAY = date(2026, 11, 21)


def evaluated(folder: Path, seed: int = 3) -> tuple[Path, Path]:
    """A tiny sampled dataset and its (published) evaluation, as `publish_dataset` takes them."""
    synthetic, evaluation = folder / "synthetic", folder / "eval"
    with claim(synthetic, "sample"):
        write_dataset(synthetic, extra={"run": {"seed": seed}, "status": "generated"}, seed=seed)
    with claim(evaluation, "evaluate"):
        atomic_write_json(evaluation / "gate.json", {"status": "published", "reasons": []})
        atomic_write_json(evaluation / "metrics.json", {"fd_ratio": 1.0, "conditional_accuracy": 0.9})
        (evaluation / "quality.parquet").write_bytes((synthetic / "metadata.parquet").read_bytes())
    return synthetic, evaluation


@pytest.fixture
def published(s3_url, tmp_path):
    """A releases root on S3 holding one published release; (root URL, release id)."""
    entry = publish_dataset(s3_url, *evaluated(tmp_path), DAY)
    return s3_url, entry.release_id


def test_a_release_published_to_s3_opens_from_its_url(published, tmp_path):
    root, release_id = published
    [entry] = read_index(root)
    assert entry.release_id == release_id and entry.status == "published" and entry.num_images == 6
    assert resolve_release(root) == f"{root}/{release_id}"
    assert sorted(s["key"] for s in open_release(root, decode="raw")) == [f"synthetic-{i:09d}" for i in range(6)]
    assert len(list(synthgen.open_dataset(root, release=release_id, decode="raw"))) == 6
    assert synthgen.load_metadata(root).collect().height == 6
    names = set(objects(f"{root}/{release_id}"))
    assert {"manifest.json", "metadata.parquet", "README.md", "gate.json", "metrics.json", "quality.parquet"} <= names
    assert not any(n.startswith("__progress__") or n.startswith(".synthgen") for n in names)
    # publishing the same data again is a no-op
    assert publish_dataset(root, tmp_path / "synthetic", tmp_path / "eval", DAY) == entry


def test_inspect_and_verify_list_and_check_an_s3_releases_root(published):
    root, release_id = published
    inspected = cli("inspect", root)
    assert inspected.exit_code == 0 and f"latest published: {release_id}" in inspected.output, inspected.output
    verified = cli("verify", root)
    assert verified.exit_code == 0 and verified.output == f"{root}: ok, 4 files match their checksums\n"
    one = cli("inspect", f"{root}/{release_id}")
    assert one.exit_code == 0 and f"release        {release_id} published" in one.output, one.output


def test_a_tampered_remote_manifest_fails_open_inspect_and_verify_in_one_line(published):
    root, release_id = published
    store = open_store(f"{root}/{release_id}")
    edited = {**json.loads(store.read_bytes("manifest.json")), "num_samples": 5}
    store.put_atomic("manifest.json", json.dumps(edited).encode())
    with pytest.raises(ReleaseChangedError, match=f"^release {release_id}: s3://.*manifest.json has sha256 .*, the "
                                                  "index recorded"):
        open_release(root)
    for args in (("inspect", root), ("verify", root), ("verify", f"{root}/{release_id}")):
        result = cli(*args)
        assert result.exit_code == 1 and f"release {release_id}: " in result.output, result.output
    store.remove("manifest.json")
    with pytest.raises(ReleaseNotFoundError, match=f"^release {release_id} is published but s3://\\S+ has no "
                                                   "manifest.json"):
        open_release(root)
    for args in (("inspect", root), ("verify", root)):
        result = cli(*args)
        assert result.exit_code == 1 and f"{release_id}/manifest.json is missing" in result.output, result.output


def test_a_crashed_upload_resumes_to_the_same_objects_and_one_index_row(s3_url, tmp_path, monkeypatch):
    synthetic, evaluation = evaluated(tmp_path)
    reference = publish_dataset(f"{s3_url}/reference", synthetic, evaluation, DAY)
    put, calls = Store.put_atomic, []

    def crash_after_three(self, name, data):  # uploads only: staging writes the local copy through a Store too
        if not self.is_local:
            calls.append(name)
            if len(calls) > 3:
                raise OSError("connection reset")
        put(self, name, data)

    monkeypatch.setattr(Store, "put_atomic", crash_after_three)
    with pytest.raises(OSError, match="connection reset"):
        publish_dataset(f"{s3_url}/crashed", synthetic, evaluation, DAY)
    monkeypatch.undo()
    root = f"{s3_url}/crashed"
    assert read_index(root) == [] and "manifest.json" not in objects(f"{root}/{reference.release_id}")
    assert [commit_rank(n) for n in calls[:3]] == [0, 0, 1]  # shards first
    uploads = []
    monkeypatch.setattr(Store, "put_atomic", lambda self, name, data: (
        None if self.is_local else uploads.append(name), put(self, name, data)))
    entry = publish_dataset(root, synthetic, evaluation, DAY)
    assert not set(uploads) & set(calls[:3])  # what was there already is kept
    assert uploads[-2:] == ["manifest.json", "index.parquet"]  # the release's commit point, then the list's
    assert objects(f"{root}/{entry.release_id}") == objects(f"{s3_url}/reference/{reference.release_id}")
    assert [e.release_id for e in read_index(root)] == [reference.release_id]


def test_the_index_lock_object_refuses_a_second_publisher(s3_url, tmp_path, monkeypatch):
    store = open_store(s3_url)
    monkeypatch.setattr(lock, "INDEX_WAIT_S", 0.0)
    with lock.object_lock(store, lock.INDEX_LOCK, "the release index", 0):  # the first publisher writes its row
        with pytest.raises(LockHeldError, match=r"^the release index of s3://\S+ is locked by pid \d+ on host .*; "
                                                r"wait for that run to end, or delete s3://\S+/index.parquet.lock"):
            publish_dataset(s3_url, *evaluated(tmp_path), DAY)
    assert not store.exists(lock.INDEX_LOCK)


def test_a_lock_object_of_a_dead_process_on_this_host_is_taken_over(s3_url):
    store = open_store(s3_url)
    dead = {**lock.this_holder(), "pid": 2**22 + 1}  # above pid_max's default: no such process
    store.put_atomic(lock.INDEX_LOCK, json.dumps(dead).encode())
    with lock.object_lock(store, lock.INDEX_LOCK, "the release index", 0):
        assert '"pid": %d' % os.getpid() in store.read_bytes(lock.INDEX_LOCK).decode()
    assert not store.exists(lock.INDEX_LOCK)


def test_an_unknown_bucket_is_one_line(s3_server):
    result = cli("inspect", "s3://no-such-bucket/releases")
    assert result.exit_code == 2 and "bucket 'no-such-bucket' does not exist" in result.output


# ---- the release job with an s3:// releases root ------------------------------------------------

def test_the_release_job_makes_locally_uploads_and_resumes_a_crashed_upload(s3_url, tmp_path, monkeypatch):
    """`make_release_at` with sampling and evaluation faked: the release is made in the local working root,
    uploaded, and indexed remotely; after a crash mid-upload the rerun does not sample again."""
    from synthgen.config import load_params
    from synthgen.releases import ReleaseFinishedError
    from synthgen.stages import release as stage

    def evaluate(params, inputs, target, seed):
        atomic_write_json(target / "gate.json", {"status": "published", "reasons": []})
        atomic_write_json(target / "metrics.json", {"fd_ratio": 1.0})
        return {"status": "published", "reasons": []}

    sampled = []

    def sample(target):
        sampled.append(target)
        write_dataset(target, extra={"run": {"seed": 3}, "status": "generated"})

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(stage, "evaluate_and_refill", evaluate)
    params = load_params(Path(__file__).parent / "data" / "tiny_params.yaml", check_paths=False)
    put = Store.put_atomic

    def crash_on_metadata(self, name, data):
        if not self.is_local and name == "metadata.parquet":
            raise OSError("connection reset")
        put(self, name, data)

    monkeypatch.setattr(Store, "put_atomic", crash_on_metadata)
    with pytest.raises(OSError, match="connection reset"):
        stage.make_release_at(params, None, s3_url, "2026-11-21", 7, sample)
    monkeypatch.setattr(Store, "put_atomic", put)
    assert read_index(s3_url) == [] and read_index(stage.working_root(s3_url))[0].status == "published"
    verdict = stage.make_release_at(params, None, s3_url, "2026-11-21", 7, sample)
    assert verdict.published and len(sampled) == 1
    assert read_index(s3_url) == [verdict.entry]
    assert sorted(s["key"] for s in open_release(s3_url, decode="raw")) == [f"synthetic-{i:09d}" for i in range(6)]
    with pytest.raises(ReleaseFinishedError, match=f"already published in {s3_url}"):
        stage.make_release_at(params, None, s3_url, "2026-11-21", 7, sample)
