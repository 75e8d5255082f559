"""The one task every stage flow runs: the stage's core `run(cfg, inputs, out)`."""
from pathlib import Path
from typing import Any, Callable

from prefect import task
from prefect.cache_policies import NO_CACHE


@task(cache_policy=NO_CACHE)
def stage_task(run: Callable[..., dict], cfg: Any, inputs: Any, out: Path) -> dict:
    """Run one stage into `out` and return its summary (DVC, not Prefect, decides what is stale)."""
    return run(cfg, inputs, out)
