"""Object storage end to end, on a real S3 API on loopback (moto's server, `tests/s3_server.py`)."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import fsspec
import polars as pl
import pytest
import torch

import synthgen
from synthgen.generate.regenerate import regenerate
from synthgen.inspect import summarise
from synthgen.shards import ShardStoreError, read_manifest, verify_dataset
from synthgen.shards.names import PROGRESS, WIDS_INDEX
from synthgen.storage import StorageError, open_store
from tests.s3_server import BUCKET, free_port
from tests.test_shards import write_dataset
from tests.test_sample_stage import run_flow, shard_hashes, write_params

REPO = Path(__file__).resolve().parents[1]


def objects(url: str) -> dict[str, bytes]:
    """Every object under `url` by relative name, with its bytes."""
    fs, root = fsspec.filesystem("s3"), url.removeprefix("s3://")
    fs.invalidate_cache()
    return {p[len(root) + 1:]: fs.cat_file(p) for p in fs.find(root)}


def local_files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_shards_on_s3_are_byte_identical_to_local_and_read_back(s3_url, tmp_path):
    write_dataset(tmp_path / "local")
    write_dataset(s3_url)
    assert objects(s3_url) == local_files(tmp_path / "local")
    assert verify_dataset(s3_url) == []
    samples = list(synthgen.open_dataset(s3_url, where=pl.col("label") == 1, decode="raw"))
    assert sorted(s["key"] for s in samples) == ["img-0001", "img-0004", "img-0007"]
    assert synthgen.load_metadata(s3_url).select(pl.len()).collect().item() == 10
    # spawn: a Prefect server thread may be running in this process, and forking a threaded process is unsafe
    loader = torch.utils.data.DataLoader(synthgen.open_dataset(s3_url, decode="raw"), batch_size=None, num_workers=2,
                                         multiprocessing_context="spawn")
    assert sorted(s["key"] for s in loader) == [f"img-{i:04d}" for i in range(10)]


def test_any_fsspec_filesystem_works_without_extra_code(tmp_path):
    write_dataset(tmp_path / "local")
    write_dataset("memory://synthgen-test/ds")
    assert verify_dataset("memory://synthgen-test/ds") == []
    assert shard_hashes("memory://synthgen-test/ds") == shard_hashes(tmp_path / "local")
    assert len(list(synthgen.open_dataset("memory://synthgen-test/ds", decode="raw"))) == 10


def test_readers_trust_only_what_the_manifest_lists(s3_url):
    write_dataset(s3_url)
    store = open_store(s3_url)
    store.put_atomic("train-000009.tar", store.read_bytes("train-000000.tar"))  # a crashed run's orphan
    keys = [s["key"] for s in synthgen.open_dataset(s3_url, decode="raw")]
    assert len(keys) == len(set(keys)) == 10


def test_missing_or_changed_object_is_a_one_line_error(s3_url):
    write_dataset(s3_url)
    store = open_store(s3_url)
    store.remove("train-000002.tar")
    with pytest.raises(ShardStoreError, match=r"train-000002\.tar in s3://\S+ is listed in manifest\.json but missing"):
        list(synthgen.open_dataset(s3_url, decode="raw"))
    data = store.read_bytes("train-000001.tar")
    store.put_atomic("train-000001.tar", data[:700] + bytes([data[700] ^ 1]) + data[701:])
    assert verify_dataset(s3_url) == ["train-000001.tar", "train-000002.tar"]
    with pytest.raises(ShardStoreError, match=r"train-000001\.tar in s3://\S+ fails its sha256 check"):
        list(synthgen.open_dataset(s3_url, decode="raw"))


def test_bad_urls_are_one_line_errors(s3_server):
    with pytest.raises(StorageError, match="bucket 'no-such-bucket' does not exist"):
        read_manifest("s3://no-such-bucket/data")
    with pytest.raises(StorageError, match="unknown storage scheme nope://"):
        open_store("nope://x/y")
    try:
        import gcsfs  # noqa: F401
    except ImportError:
        with pytest.raises(StorageError, match="gs:// scheme needs an fsspec package"):
            open_store("gs://bucket/data")


def cli(*args, log: Path, env=None) -> subprocess.Popen:
    """`synthgen <args>` in its own process group (with the Prefect server it starts), output to the file `log`."""
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, "-m", "flows.cli", *args], cwd=REPO, stdout=out,
                                stderr=subprocess.STDOUT, env={**os.environ, **(env or {}), "PYTHONPATH": str(REPO)},
                                start_new_session=True)


def kill_group(proc: subprocess.Popen) -> int:
    """SIGKILL the run and every process it started, as a lost machine would; its exit code."""
    os.killpg(proc.pid, signal.SIGKILL)
    return proc.wait()


def test_unreachable_endpoint_is_a_one_line_error(s3_server, tmp_path):
    closed = f"http://127.0.0.1:{free_port()}"
    log = tmp_path / "inspect.log"
    proc = cli("inspect", f"s3://{BUCKET}/data", log=log, env={"AWS_ENDPOINT_URL": closed, "AWS_MAX_ATTEMPTS": "1"})
    assert proc.wait(timeout=120) == 2
    err = log.read_text()
    assert err.strip().count("\n") == 0 and f"cannot access bucket '{BUCKET}': Could not connect" in err, err


def test_inspect_reads_a_dataset_on_s3(s3_url):
    write_dataset(s3_url)
    summary = summarise(s3_url)
    assert summary["num_samples"] == 10 and summary["verification"]["ok"]
    assert summary["classes"] == {"class0": 4, "class1": 3, "class2": 3}


@pytest.fixture(scope="module")
def local_run(models_dir, filter_dir, tmp_path_factory, prefect_harness):
    """The sample stage run to a local folder: the bytes every S3 run must reproduce."""
    folder = tmp_path_factory.mktemp("local")
    run_flow(write_params(folder, num_images=15, images_per_shard=3), (*models_dir, filter_dir), folder / "out")
    return folder / "out"


def test_sample_stage_writes_to_s3_and_open_dataset_reads_it(local_run, models_dir, filter_dir, s3_url, tmp_path):
    run_flow(write_params(tmp_path, num_images=15, images_per_shard=3), (*models_dir, filter_dir), s3_url)
    assert shard_hashes(s3_url) == shard_hashes(local_run)
    got = objects(s3_url)
    assert {k: v for k, v in got.items() if k.endswith((".tar", ".parquet"))} == \
        {k: v for k, v in local_files(local_run).items() if k.endswith((".tar", ".parquet"))}
    assert len(list(synthgen.open_dataset(s3_url, batch_size=4))) == 4
    assert regenerate(s3_url, "synthetic-000000007", *models_dir).matches


def wait_for_object(url: str, name: str, proc: subprocess.Popen, log: Path, timeout_s: float = 300) -> None:
    fs, path = fsspec.filesystem("s3"), f"{url.removeprefix('s3://')}/{name}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        fs.invalidate_cache()
        if fs.exists(path):
            return
        time.sleep(0.2)
    code = proc.poll()
    if code is None:
        kill_group(proc)
    raise AssertionError(f"{name} never appeared (run exit code {code}): {log.read_text()[-2000:]}")


@pytest.mark.slow
def test_killed_sample_run_on_s3_resumes_to_the_local_bytes(local_run, models_dir, filter_dir, s3_url, tmp_path):
    params = write_params(tmp_path, num_images=15, images_per_shard=3, max_workers=1)
    args = ("sample", "--params", params, "--diffusion", str(models_dir[0]), "--autoencoder", str(models_dir[1]),
            "--filter", filter_dir, "--out", s3_url)
    log = tmp_path / "sample.log"
    proc = cli(*args, log=log)
    wait_for_object(s3_url, f"{PROGRESS}/synthetic-000000.tar.json", proc, log)
    kill_group(proc)
    assert "manifest.json" not in objects(s3_url), "the run finished before it was killed"
    rerun = cli(*args, log=log)
    assert rerun.wait(timeout=600) == 0, log.read_text()[-2000:]
    manifest = read_manifest(s3_url)
    assert manifest["run"]["resumed_shards"] >= 1
    assert shard_hashes(s3_url) == shard_hashes(local_run)
    names = set(objects(s3_url))
    shards = {s["name"] for s in manifest["shards"]}
    assert names == shards | {s["index"] for s in manifest["shards"]} | {f"{PROGRESS}/{s}.json" for s in shards} | {
        "metadata.parquet", WIDS_INDEX, "manifest.json", "README.md"}
    keys = synthgen.load_metadata(s3_url).select("key").collect()["key"]
    assert keys.n_unique() == keys.len() == 15
    fs = fsspec.filesystem("s3")
    modified = {p: fs.info(p)["LastModified"] for p in fs.find(s3_url.removeprefix("s3://"))}
    manifest_time = modified.pop(f"{s3_url.removeprefix('s3://')}/manifest.json")
    assert all(t <= manifest_time for t in modified.values())  # the commit point was written last


@pytest.mark.slow
def test_dvc_remote_on_the_s3_endpoint_restores_models_in_a_fresh_clone(s3_server, s3_url, tmp_path):
    """`dvc push` a model folder to the loopback S3 remote, then `dvc pull` it into a clone without the cache."""
    from tests.dvc_repo import run

    repo = tmp_path / "repo"
    repo.mkdir()
    for cmd in (["git", "init", "-q"], ["git", "config", "user.email", "t@example.com"],
                ["git", "config", "user.name", "t"], ["dvc", "init", "-q"], ["dvc", "config", "core.analytics", "false"]):
        run(cmd, repo)
    weights = repo / "models" / "diffusion" / "model.pt"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(os.urandom(50_000))
    run(["dvc", "add", "models"], repo)
    run(["dvc", "remote", "add", "-d", "store", f"{s3_url}/dvc"], repo)
    run(["dvc", "remote", "modify", "store", "endpointurl", s3_server], repo)
    run(["dvc", "push"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "models"], repo)

    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(repo), str(clone)], tmp_path)
    assert not (clone / "models").exists()
    run(["dvc", "pull"], clone)
    assert (clone / "models" / "diffusion" / "model.pt").read_bytes() == weights.read_bytes()
