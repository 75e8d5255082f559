"""The scheduled job: refresh models when stale (DVC decides), then make the release of the run date.

Each run date gets its own release `releases/<date>/` with a seed derived from the date, so any
release can be reproduced; `synthgen.stages.release` makes it and returns the verdict. `releases`
may be a URL (`s3://bucket/releases`): the release is made on this disk and uploaded there. A rejected
release fails the run with the gate's reasons.
"""
from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path

from prefect import flow, runtime

from flows.artifacts import publish_summary
from flows.evaluate import rejection
from flows.sample import run_sample
from synthgen.config import load_params
from synthgen.config.params import Params
from synthgen.releases import release_id_for
from synthgen.seeds import derive_seed
from synthgen.stages import release as stage
from synthgen.stages.layout import (
    AutoencoderLayout, ClassifierLayout, DiffusionLayout, FilterLayout, PreparedLayout, ReleasesLayout, SweepLayout,
)
from synthgen.storage import join
from tasks.dvc import dvc_push_task, dvc_stage_task

MODEL_STAGES = ("prepare", "train_autoencoder", "encode_latents", "train_diffusion", "train_filter",
                "train_classifier", "sweep_samplers")
MODELS = stage.Inputs(*(layout(Path(layout.DEFAULT)) for layout in (
    PreparedLayout, ClassifierLayout, SweepLayout, DiffusionLayout, AutoencoderLayout, FilterLayout)))


def run_date_of(explicit: str | None) -> date:
    """The scheduled date of this run (so a retry maps to the same release), else today in UTC."""
    if explicit:
        return date.fromisoformat(explicit)
    scheduled = runtime.flow_run.scheduled_start_time
    return scheduled.date() if scheduled else datetime.now(timezone.utc).date()


@flow(name="release", log_prints=True)
def release(params_path: str = "params.yaml", run_date: str | None = None, releases: str = ReleasesLayout.DEFAULT,
            use_dvc: bool = True, push: bool = True, params: Params | None = None) -> dict:
    """Make (or resume) the release of `run_date`: sample with the date's seed, evaluate, gate, index.
    `params` are those of `params_path` when the caller has loaded them already (the CLI reads the file once)."""
    params = params or load_params(params_path)
    for model_stage in MODEL_STAGES if use_dvc else ():
        dvc_stage_task(model_stage)
    release_id = release_id_for(run_date_of(run_date))
    seed = derive_seed(params.sample.seed, "release/seed", release_id)
    verdict = stage.make_release_at(params, MODELS, releases, release_id, seed,
                                    sample=lambda target: run_sample(params, out=str(target), seed=seed))
    target = stage.working_root(releases) / release_id  # where it was made: on this disk
    if not verdict.published:
        raise rejection(join(releases, release_id), verdict.reasons)
    pushed = dvc_push_task() if (use_dvc and push) else False
    publish_summary(target, release_id, {"release": verdict.entry.status, "dvc push": "done" if pushed else "no remote"})
    print(f"release {release_id}: {verdict.entry.status} ({verdict.entry.num_images} images) -> "
          f"{join(releases, release_id)}")
    return {"release": release_id, "status": verdict.entry.status, "seed": seed}
