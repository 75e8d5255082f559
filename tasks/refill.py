"""Thin Prefect tasks around synthgen.generate.refill: pick the flagged samples, refill one round."""
from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from synthgen import paths
from synthgen.config.sample import SampleConfig
from synthgen.generate.models import load_models
from synthgen.generate.refill import refill_dataset, select_flagged
from synthgen.training.distributed import cpu_threads
from tasks.retry import IO_RETRIES


@task(cache_policy=NO_CACHE)
def flagged_task(dataset: str, criteria: tuple[str, ...]) -> list[str]:
    """Keys of the evaluated dataset's samples that its quality.parquet flags by `criteria`."""
    return select_flagged(dataset, criteria)


@task(cache_policy=NO_CACHE, task_run_name="refill-round-{round}", **IO_RETRIES)
def refill_task(dataset: str, flagged: list[str] | None, cfg: SampleConfig, seed: int, round: int,
                criteria: tuple[str, ...], diffusion: str = paths.DIFFUSION,
                autoencoder: str = paths.AUTOENCODER) -> dict:
    """Replace the flagged samples in round `round` (None: finish the round a crash interrupted); resumable."""
    models = load_models(diffusion, autoencoder, cfg.device, cfg.compile, cfg.channels_last)
    with cpu_threads(cfg.cpu_threads):
        return refill_dataset(dataset, flagged, models, cfg, seed, round, criteria)
