"""The sample stage's shards as Prefect tasks: one task per shard, on the flow's task runner (threads or Ray)."""
import contextlib
import sys
import time

from prefect import get_run_logger, task, unmapped
from prefect.cache_policies import NO_CACHE
from prefect.futures import as_completed
from tqdm import tqdm

from synthgen.config.sample import SampleConfig
from synthgen.generate.shard_sampler import ShardJob
from tasks.retry import IO_RETRIES


@task(cache_policy=NO_CACHE, task_run_name="sample-shard-{index}", **IO_RETRIES)
def sample_shard_task(index: int, job: ShardJob) -> dict:
    """Generate one shard, write it atomically, then record its receipt; on Ray, name the node that made it."""
    return {**job.make(index), **ray_node()}


def ray_node() -> dict:
    """`{"ray_node": <node id>}` inside a Ray worker, else nothing (Ray is never imported here)."""
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return {}
    return {"ray_node": ray.get_runtime_context().get_node_id()}


def shard_resources(cfg: SampleConfig):
    """Ray: what each shard task asks the cluster for. Local: nothing."""
    if cfg.task_runner != "ray":
        return contextlib.nullcontext()
    from prefect_ray.context import remote_options

    return remote_options(num_gpus=cfg.ray_num_gpus, num_cpus=cfg.ray_num_cpus)


def shard_tasks(job: ShardJob, indices: list[int]) -> list[dict]:
    """Map the shards over the task runner; wait for them with a live bar and log lines (images/s, ETA)."""
    logger = get_run_logger()
    with shard_resources(job.cfg):
        futures = sample_shard_task.map(indices, job=unmapped(job))
    entries, start = [], time.perf_counter()
    with tqdm(total=len(futures), unit="shard", desc="sample") as bar:
        for future in as_completed(futures):
            entries.append(future.result())
            bar.update(1)
            images = sum(e["count"] for e in entries)
            rate = images / (time.perf_counter() - start)
            eta = (len(futures) - len(entries)) * (images / len(entries)) / max(rate, 1e-9)
            bar.set_postfix(images_per_s=f"{rate:.1f}")
            logger.info(f"shard {len(entries)}/{len(futures)} done, {rate:.1f} images/s, ETA {eta:.0f}s")
    return entries
