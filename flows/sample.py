"""Stage `sample`: the synthetic dataset, one Prefect task per shard, resumable (`synthgen.stages.sample`).

The task runner comes from params (`sample.task_runner`): a local thread pool, or Ray through
prefect-ray, where every shard task asks for `sample.ray_num_gpus` GPUs.
"""
from __future__ import annotations

from pathlib import Path

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from synthgen.config.params import Params
from synthgen.config.sample import SampleConfig
from synthgen.stages import sample as stage
from synthgen.stages.layout import AutoencoderLayout, DiffusionLayout, FilterLayout, SyntheticLayout
from tasks.sample import shard_tasks


def task_runner_for(cfg: SampleConfig):
    if cfg.task_runner == "ray":
        from flows.ray_runner import ray_task_runner

        return ray_task_runner(cfg)
    return ThreadPoolTaskRunner(max_workers=cfg.max_workers)


@flow(name="sample", log_prints=True)
def sample(params: Params, diffusion: str = DiffusionLayout.DEFAULT, autoencoder: str = AutoencoderLayout.DEFAULT,
           filter: str = FilterLayout.DEFAULT, out: str = SyntheticLayout.DEFAULT, seed: int | None = None) -> dict:
    """Generate `sample.num_images` images into WebDataset shards in `out` (resuming a crashed run)."""
    inputs = stage.Inputs(DiffusionLayout(Path(diffusion)), AutoencoderLayout(Path(autoencoder)),
                          FilterLayout(Path(filter)))
    summary = stage.run(params, inputs, out, seed=seed, map_shards=shard_tasks)
    print(f"wrote {summary['num_samples']} images in {summary['num_shards']} shards to {out}")
    return summary


def run_sample(params: Params, **folders) -> dict:
    """Run the flow with the task runner that params ask for."""
    return sample.with_options(task_runner=task_runner_for(params.sample))(params, **folders)


if __name__ == "__main__":
    from flows.cli import run_stage_cli

    run_stage_cli("sample")
