from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from synthgen.config.sample import SampleConfig
from synthgen.generate.models import load_models
from synthgen.generate.plan import SamplingPlan
from synthgen.generate.run import finish_run, pending_shards
from synthgen.generate.shard_sampler import Provenance, generate_shard
from synthgen.shards.progress import record_done
from synthgen.training.distributed import cpu_threads
from tasks.retry import IO_RETRIES


@task(cache_policy=NO_CACHE, **IO_RETRIES)
def resume_task(out: str, plan: SamplingPlan, run_key: str) -> tuple[list[int], dict]:
    """Clean up after any crashed run; return the shards still to make and the verified finished ones."""
    return pending_shards(out, plan, run_key)


@task(cache_policy=NO_CACHE, task_run_name="sample-shard-{index}", **IO_RETRIES)
def sample_shard_task(index: int, plan: SamplingPlan, cfg: SampleConfig, diffusion: str, autoencoder: str,
                      class_names: list[str], provenance: Provenance, out: str) -> dict:
    """Generate one shard, write it atomically, then record its receipt."""
    models = load_models(diffusion, autoencoder, cfg.device, cfg.compile, cfg.channels_last)
    with cpu_threads(cfg.cpu_threads):
        entry = generate_shard(models, plan.shard(index), cfg, class_names, provenance, out)
    record_done(out, entry, provenance.config_hash)
    return entry


@task(cache_policy=NO_CACHE, **IO_RETRIES)
def finish_task(out: str, plan: SamplingPlan, entries: list[dict], class_names: list[str], config: dict,
                run: dict) -> dict:
    """Write metadata.parquet, the manifest and the dataset card once every shard is in."""
    return finish_run(Path(out), plan, entries, class_names, config, run)
