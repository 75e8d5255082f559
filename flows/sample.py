"""Stage `sample`: generate the synthetic dataset, one Prefect task per shard, resumable.

The task runner comes from params (`sample.task_runner`): a local thread pool, or Ray through
prefect-ray, where every shard task asks for `sample.ray_num_gpus` GPUs.
"""
from __future__ import annotations

import contextlib
import socket
import time
from datetime import datetime, timezone

from prefect import flow, get_run_logger, unmapped
from prefect.futures import as_completed
from prefect.task_runners import ThreadPoolTaskRunner
from tqdm import tqdm

from synthgen import paths
from synthgen.config import load_params, params_hash, resolved
from synthgen.config.sample import SampleConfig
from synthgen.generate.models import load_models
from synthgen.generate.run import build_plan, run_key
from synthgen.generate.shard_sampler import Provenance
from tasks.sample import finish_task, resume_task, sample_shard_task


def task_runner_for(cfg: SampleConfig):
    if cfg.task_runner == "ray":
        from flows.ray_runner import ray_task_runner

        return ray_task_runner(cfg)
    return ThreadPoolTaskRunner(max_workers=cfg.max_workers)


def shard_resources(cfg: SampleConfig):
    """Ray: what each shard task asks the cluster for. Local: nothing."""
    if cfg.task_runner != "ray":
        return contextlib.nullcontext()
    from prefect_ray.context import remote_options

    return remote_options(num_gpus=cfg.ray_num_gpus, num_cpus=cfg.ray_num_cpus)


@flow(name="sample", log_prints=True)
def sample(params_path: str = "params.yaml", overrides: list[str] | None = None,
           diffusion: str = paths.DIFFUSION, autoencoder: str = paths.AUTOENCODER,
           out: str = paths.SYNTHETIC, seed: int | None = None) -> dict:
    """Generate `sample.num_images` images into WebDataset shards in `out` (resuming a crashed run)."""
    logger = get_run_logger()
    started = datetime.now(timezone.utc).isoformat()
    params = load_params(params_path, overrides or [])
    cfg = params.sample
    models = load_models(diffusion, autoencoder, cfg.device)
    class_names = models.diffusion.class_names
    plan = build_plan(cfg, class_names, seed)
    key = run_key(cfg, plan.seed, models.diffusion.sha256, models.autoencoder.sha256)
    provenance = Provenance(models.diffusion.sha256, models.autoencoder.sha256, key)

    todo, done = resume_task(out, plan, key)
    logger.info(f"{plan.num_images} images in {plan.num_shards} shards: {len(done)} already done, {len(todo)} to make")
    entries = list(done.values())
    with shard_resources(cfg):
        shared = dict(plan=plan, cfg=cfg, diffusion=diffusion, autoencoder=autoencoder, class_names=class_names,
                      provenance=provenance, out=out)
        futures = sample_shard_task.map(todo, **{name: unmapped(value) for name, value in shared.items()})
    entries += track(futures, logger)

    run = {
        "seed": plan.seed, "started_at": started, "finished_at": datetime.now(timezone.utc).isoformat(),
        "host": socket.gethostname(), "task_runner": cfg.task_runner, "resumed_shards": len(done),
        "diffusion_sha256": provenance.diffusion_sha256, "autoencoder_sha256": provenance.autoencoder_sha256,
        "config_hash": key, "params_hash": params_hash(params), "out": out,
    }
    manifest = finish_task(out, plan, entries, class_names, resolved(params), run)
    print(f"wrote {manifest['num_samples']} images in {manifest['num_shards']} shards to {out}")
    return {"num_samples": manifest["num_samples"], "num_shards": manifest["num_shards"], "out": out}


def track(futures, logger) -> list[dict]:
    """Wait for shard tasks as they finish, with a live bar and log lines carrying shards, images/s and ETA."""
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


def run_sample(params_path: str, overrides: list[str], **folders) -> dict:
    """Run the flow with the task runner that params ask for."""
    cfg = load_params(params_path, overrides).sample
    return sample.with_options(task_runner=task_runner_for(cfg))(params_path=params_path, overrides=overrides,
                                                                   **folders)


if __name__ == "__main__":
    from flows.cli import run_stage_cli

    run_stage_cli("sample")
