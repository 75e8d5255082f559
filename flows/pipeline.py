"""The whole graph as one Prefect flow: each stage a task, run through `dvc repro` by default.

DVC decides what is stale (one cache, DVC's; Prefect caches nothing), and `dvc.lock` records what
ran. `use_dvc=False` runs the stage flows directly as subflows, for a quick call without DVC.
"""
from __future__ import annotations

import importlib
from datetime import datetime, timezone
from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from synthgen import paths
from synthgen.config import load_params, params_hash
from synthgen.errors import SynthgenError
from synthgen.releases.publish import publish_dataset
from flows.artifacts import publish_summary
from tasks.dvc import StageFailed, dvc_stage_task

STAGES = ("prepare", "train_autoencoder", "encode_latents", "train_diffusion", "sample", "train_classifier",
          "sweep_samplers", "evaluate")


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[2, 5])
def publish_task(releases: str, synthetic: str, evaluation: str, phash: str) -> str:
    """Copy the evaluated dataset into an append-only release; return its id."""
    entry = publish_dataset(releases, synthetic, evaluation, datetime.now(timezone.utc).date(), phash)
    return entry.release_id


def run_stage_flow(stage: str, params_path: str, overrides: list[str]) -> str:
    flow_fn = getattr(importlib.import_module(f"flows.{stage}"), stage)  # flows/<stage>.py defines <stage>()
    try:
        flow_fn(params_path=params_path, overrides=overrides)
    except Exception as e:
        raise StageFailed(f"stage {stage} failed: {e}") from e
    return "ran"


@flow(name="pipeline", log_prints=True)
def pipeline(params_path: str = "params.yaml", overrides: list[str] | None = None, use_dvc: bool = True,
             stages: list[str] | None = None, publish: bool = True, releases: str = paths.RELEASES) -> dict:
    """prepare -> train_autoencoder -> encode_latents -> train_diffusion -> sample -> train_classifier ->
    sweep_samplers -> evaluate, then publish the evaluated dataset as a release."""
    overrides = list(overrides or [])
    params = load_params(params_path, overrides)
    if use_dvc and overrides:
        raise SynthgenError("with DVC, change params.yaml or use `dvc exp run -S key=value`; --set needs --no-dvc")
    unknown = sorted(set(stages or ()) - set(STAGES))
    if unknown:
        raise SynthgenError(f"unknown stages {unknown}; the stages are {', '.join(STAGES)}")
    outcomes: dict[str, str] = {}
    for stage in stages or STAGES:
        outcomes[stage] = dvc_stage_task(stage) if use_dvc else run_stage_flow(stage, params_path, overrides)
    release = None
    if publish and "evaluate" in outcomes:
        release = publish_task(releases, paths.SYNTHETIC, paths.EVAL, params_hash(params))
    publish_summary(Path(paths.EVAL), release, outcomes)
    print("stages: " + ", ".join(f"{s} {o}" for s, o in outcomes.items()))
    if release:
        print(f"release: {releases}/{release}  report: {paths.EVAL}/report.html  metrics: {paths.EVAL}/metrics.json")
    return {"stages": outcomes, "release": release}
