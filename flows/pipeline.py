"""The whole graph as one Prefect flow: each stage a task, run through `dvc repro` by default.

DVC decides what is stale (one cache, DVC's; Prefect caches nothing), and `dvc.lock` records what
ran. `use_dvc=False` runs the stage flows directly as subflows, for a quick call without DVC.
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows.artifacts import publish_summary
from flows.cli import STAGES, stage_flow
from synthgen.config import params_hash
from synthgen.config.params import Params
from synthgen.errors import SynthgenError
from synthgen.releases.publish import publish_dataset
from synthgen.stages.layout import EvalLayout, ReleasesLayout, SyntheticLayout
from tasks.dvc import StageFailed, dvc_stage_task
from tasks.retry import IO_RETRIES

STAGE_NAMES = tuple(s.name for s in STAGES)
EVAL = EvalLayout(Path(EvalLayout.DEFAULT))


@task(cache_policy=NO_CACHE, **IO_RETRIES)
def publish_task(releases: str, synthetic: str, evaluation: str, phash: str) -> str:
    """Copy the evaluated dataset into an append-only release; return its id."""
    entry = publish_dataset(releases, synthetic, evaluation, datetime.now(timezone.utc).date(), phash)
    return entry.release_id


def run_stage_flow(name: str, params: Params) -> str:
    try:
        stage_flow(name)(params)
    except Exception as e:
        raise StageFailed(f"stage {name} failed: {e}") from e
    return "ran"


@flow(name="pipeline", log_prints=True)
def pipeline(params: Params, use_dvc: bool = True, stages: list[str] | None = None, publish: bool = True,
             releases: str = ReleasesLayout.DEFAULT) -> dict:
    """prepare -> train_autoencoder -> encode_latents -> train_diffusion -> sample -> train_classifier ->
    sweep_samplers -> evaluate, then publish the evaluated dataset as a release."""
    unknown = sorted(set(stages or ()) - set(STAGE_NAMES))
    if unknown:
        raise SynthgenError(f"unknown stages {unknown}; the stages are {', '.join(STAGE_NAMES)}")
    outcomes = {name: dvc_stage_task(name) if use_dvc else run_stage_flow(name, params)
                for name in stages or STAGE_NAMES}
    release = None
    if publish and "evaluate" in outcomes:
        release = publish_task(releases, SyntheticLayout.DEFAULT, EVAL.root, params_hash(params))
    publish_summary(EVAL.root, release, outcomes)
    print("stages: " + ", ".join(f"{s} {o}" for s, o in outcomes.items()))
    if release:
        print(f"release: {releases}/{release}  report: {EVAL.report}  metrics: {EVAL.metrics}")
    return {"stages": outcomes, "release": release}
