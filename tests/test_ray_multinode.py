"""The sample stage on a two-node Ray cluster (two raylets on loopback): the same bytes as one local
worker, spread over both nodes, on a shared folder or the loopback S3 server, and a lost node costs nothing."""
import threading
import time

import polars as pl
import pytest

from synthgen.shards import read_manifest
from synthgen.shards.names import PROGRESS
from synthgen.storage import open_store
from tests.test_sample_stage import run_flow, write_params

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]

SHARDS = {"num_images": 16, "images_per_shard": 2}  # 8 shards: enough for both nodes to take several


def file_hashes(location) -> dict[str, str]:
    """sha256 of every shard and of metadata.parquet (in a folder or a bucket): what must not depend on
    where the shards ran."""
    store = open_store(location)
    return {name: store.sha256(name) for name in [*store.list(".tar"), "metadata.parquet"]}


@pytest.fixture(scope="module")
def one_worker(models_dir, filter_dir, tmp_path_factory, prefect_harness):
    """The reference: one local worker, shard after shard."""
    folder = tmp_path_factory.mktemp("one-worker")
    run_flow(write_params(folder, **SHARDS, max_workers=1), (*models_dir, filter_dir), folder / "out")
    return file_hashes(folder / "out")


def ray_params(tmp_path, cluster) -> str:
    return write_params(tmp_path, **SHARDS, task_runner="ray", ray_address=cluster.address)


def test_two_nodes_write_the_same_bytes_as_one_worker(ray_cluster, one_worker, models_dir, filter_dir, tmp_path):
    out = tmp_path / "out"
    run_flow(ray_params(tmp_path, ray_cluster), (*models_dir, filter_dir), out)
    assert file_hashes(out) == one_worker
    assert_both_nodes_worked(ray_cluster, out)


def assert_both_nodes_worked(cluster, location) -> None:
    nodes = {s["name"]: s["ray_node"] for s in read_manifest(location)["shards"]}
    ids = cluster.node_ids()
    assert set(nodes.values()) == {ids["head"], ids["node2"]}, nodes


def test_two_nodes_write_to_object_storage(s3_url, ray_cluster, one_worker, models_dir, filter_dir, tmp_path):
    """Every node writes its shards to the loopback S3 server (the nodes inherit its endpoint and keys);
    the driver then writes metadata and manifest there."""
    run_flow(ray_params(tmp_path, ray_cluster), (*models_dir, filter_dir), s3_url)
    assert file_hashes(s3_url) == one_worker
    assert_both_nodes_worked(ray_cluster, s3_url)


def kill_when_shards_done(node, out, count: int, timeout: float = 300) -> tuple[threading.Thread, list[int]]:
    """Kill `node` (its raylet, agents and workers) once `count` shard receipts exist in `out`, from a
    background thread; the returned list gets the number of receipts there were at the kill."""
    receipts = []

    def watch():
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(list((out / PROGRESS).glob("*.json"))) < count:
            time.sleep(0.05)
        node.kill()
        receipts.append(len(list((out / PROGRESS).glob("*.json"))))

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread, receipts


def test_losing_a_node_part_way_loses_and_duplicates_nothing(ray_cluster, one_worker, models_dir, filter_dir, tmp_path):
    """Ray retries the shard task that was running on the lost node on the head; its shard is made once."""
    out = tmp_path / "out"
    node2 = next(n for n in ray_cluster.nodes if n.name == "node2")
    watcher, receipts_at_kill = kill_when_shards_done(node2, out, count=3)
    run_flow(ray_params(tmp_path, ray_cluster), (*models_dir, filter_dir), out)
    watcher.join()
    assert not node2.alive() and receipts_at_kill and receipts_at_kill[0] < 8
    assert file_hashes(out) == one_worker
    keys = pl.read_parquet(out / "metadata.parquet")["key"]
    assert keys.n_unique() == keys.len() == SHARDS["num_images"]
    assert sorted(s["name"] for s in read_manifest(out)["shards"]) == sorted(n for n in one_worker if n.endswith(".tar"))
