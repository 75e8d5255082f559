from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from synthgen.config.data import DataConfig
from synthgen.data.prepare import prepare_dataset


@task(cache_policy=NO_CACHE)
def prepare_dataset_task(cfg: DataConfig, out: str) -> dict:
    """Decode, clean, deduplicate and split the source into train/val shards."""
    return prepare_dataset(cfg, Path(out)).as_dict()
