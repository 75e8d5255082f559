"""Multi-node Ray: images/s of the sample flow on one node and on two nodes of a loopback cluster, in one run.

    python bench/ray_nodes.py --images 48 --per-shard 4 --steps 10

A head node (1 CPU) is started with `ray start` on 127.0.0.2 and the flow (`flows.sample.run_sample`,
sample.task_runner=ray, sample.ray_address=<head>) runs on it alone; then a second node (1 CPU,
127.0.0.3, its own raylet) joins and the same flow runs again into a fresh folder. Both nodes are on this
machine and share its cores, so a speed-up only shows where the machine has a spare core: this is the
correctness set-up for a real cluster, not a scaling figure. Prints images/s of the flow body (from the
manifest's run facts) and of the wall time, the shards each node made, whether the shard sha256s match,
and the load average the runs ran under. Without --diffusion/--autoencoder, the tests' tiny models are used.
"""
from __future__ import annotations

import argparse
import atexit
import os
import shutil
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

# Read by Prefect at import: a throwaway home, no telemetry, a temporary local API for this run only.
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="bench-ray-nodes-prefect-")
atexit.register(shutil.rmtree, os.environ["PREFECT_HOME"], ignore_errors=True)
os.environ.update(PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_LOGGING_TO_API_ENABLED="false", DO_NOT_TRACK="1",
                  PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="180")  # a busy machine starts it slowly
os.environ.pop("PREFECT_API_URL", None)

import yaml  # noqa: E402

from synthgen.config import load_params  # noqa: E402
from synthgen.config.sample import SampleConfig  # noqa: E402
from synthgen.shards import read_manifest  # noqa: E402
from tests.ray_cluster import RayCluster  # noqa: E402
from tests.tiny_models import write_tiny_models  # noqa: E402


def flow_seconds(manifest: dict) -> float:
    run = manifest["run"]
    return (datetime.fromisoformat(run["finished_at"]) - datetime.fromisoformat(run["started_at"])).total_seconds()


def run_on(cluster: RayCluster, args, models: tuple[str, str], out: Path) -> dict:
    """One sample flow on `cluster`: wall and body seconds, shard sha256s, shards made per node."""
    from flows.sample import run_sample

    cfg = SampleConfig(num_images=args.images, images_per_shard=args.per_shard, device="cpu",
                       sampler={"name": "ddim", "steps": args.steps}, task_runner="ray", ray_address=cluster.address,
                       filter={"enabled": False})  # the sampling throughput alone (bench/filter.py measures the filter)
    params = out.parent / f"{out.name}.params.yaml"
    params.write_text(yaml.safe_dump({"sample": cfg.model_dump(mode="json")}))
    start = time.perf_counter()
    run_sample(load_params(str(params)), diffusion=models[0], autoencoder=models[1], out=str(out))
    wall = time.perf_counter() - start
    manifest = read_manifest(out)
    names = {node_id: name for name, node_id in cluster.node_ids().items()}
    return {"wall": wall, "body": flow_seconds(manifest), "sha256": {s["name"]: s["sha256"] for s in manifest["shards"]},
            "per_node": Counter(names.get(s.get("ray_node"), "?") for s in manifest["shards"])}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=48)
    p.add_argument("--per-shard", type=int, default=4)
    p.add_argument("--steps", type=int, default=10, help="DDIM steps")
    p.add_argument("--diffusion", help="trained diffusion folder (default: the tests' tiny models)")
    p.add_argument("--autoencoder", help="trained autoencoder folder (give both or neither)")
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="synthgen-ray-"))  # short: Ray's socket paths live under it
    cluster = RayCluster(tmp / "cluster")
    cluster.root.mkdir()
    try:
        models = (args.diffusion, args.autoencoder) if args.diffusion else write_tiny_models(tmp / "models")
        load_before = os.getloadavg()
        cluster.start_node("head", head=True)
        runs = {1: run_on(cluster, args, models, tmp / "one-node")}
        cluster.start_node("node2", resources={"node2": 1})
        runs[2] = run_on(cluster, args, models, tmp / "two-nodes")
        load_after = os.getloadavg()
    finally:
        cluster.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\n{args.images} images in {-(-args.images // args.per_shard)} shards, DDIM {args.steps} steps, "
          f"1 CPU per node, {os.cpu_count()} cores on this machine\n")
    print("| nodes | flow body s | images/s (body) | wall s | images/s (wall) | shards per node |\n"
          "| --- | --- | --- | --- | --- | --- |")
    for nodes, r in runs.items():
        per_node = ", ".join(f"{name} {n}" for name, n in sorted(r["per_node"].items()))
        print(f"| {nodes} | {r['body']:.1f} | {args.images / r['body']:.2f} | {r['wall']:.1f} | "
              f"{args.images / r['wall']:.2f} | {per_node} |")
    print(f"\nbody ratio (1 node / 2 nodes): {runs[1]['body'] / runs[2]['body']:.2f}x; "
          f"shard sha256s identical: {runs[1]['sha256'] == runs[2]['sha256']}")
    print(f"load average (1, 5, 15 min) before: {load_before}, after: {load_after}")


if __name__ == "__main__":
    main()
