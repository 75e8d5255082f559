"""The scheduled job: refresh models when stale (DVC decides), then make a new release.

Each run date gets its own release `releases/<date>/` with a seed derived from the date, so any
release can be reproduced. A crashed run resumes its own release on the next attempt; a lock
stops two runs working on the same release at once. With `evaluate.refill.enabled`, the samples
that evaluation flags are replaced (new seeds, same labels) and the release is evaluated again.
"""
from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path

from prefect import flow, runtime

from flows.artifacts import publish_summary
from flows.evaluate import GateRejected, evaluate
from flows.sample import run_sample
from synthgen import paths
from synthgen.config import load_params, params_hash
from synthgen.evaluation.evaluate_stage import annotate_dataset
from synthgen.generate.refill import refill_progress
from synthgen.releases import (
    fail_release, finish_release, release_id_for, release_lock, start_release,
)
from synthgen.seeds import derive_seed
from tasks.dvc import dvc_push_task, dvc_stage_task
from tasks.refill import flagged_task, refill_task

MODEL_STAGES = ("prepare", "train_autoencoder", "encode_latents", "train_diffusion", "train_classifier",
                "sweep_samplers")


def run_date_of(explicit: str | None) -> date:
    """The scheduled date of this run (so a retry maps to the same release), else today in UTC."""
    if explicit:
        return date.fromisoformat(explicit)
    scheduled = runtime.flow_run.scheduled_start_time
    return scheduled.date() if scheduled else datetime.now(timezone.utc).date()


def sample_release(params, params_path: str, target: Path, seed: int) -> None:
    """Sample (or resume) the release; one that refill has changed is never sampled again (that would undo
    the refill): a round a crash interrupted is finished instead."""
    refill = params.evaluate.refill
    progress = refill_progress(target) if refill.enabled else None
    if progress is None or not progress.started:
        run_sample(params_path, [], out=str(target), seed=seed)
    elif progress.pending is not None:
        refill_task(str(target), None, params.sample, seed, progress.pending, refill.criteria)


def evaluated(params_path: str, target: Path) -> GateRejected | None:
    """Evaluate the release in place; a gate rejection is returned, not raised."""
    try:
        evaluate(params_path=params_path, synthetic=str(target), out=str(target))
    except GateRejected as rejected:
        return rejected
    return None


def evaluate_and_refill(params, params_path: str, target: Path, seed: int) -> None:
    """Evaluate; with `evaluate.refill.enabled`, replace the flagged samples and evaluate again until none
    is flagged or `max_rounds` rounds are done. Raises GateRejected when the last evaluation rejects."""
    refill = params.evaluate.refill
    rejected = evaluated(params_path, target)
    if refill.enabled:
        for round in range(refill_progress(target).rounds + 1, refill.max_rounds + 1):
            flagged = flagged_task(str(target), refill.criteria)
            if not flagged:
                break
            print(f"refill round {round}: replacing {len(flagged)} flagged samples ({', '.join(refill.criteria)})")
            refill_task(str(target), flagged, params.sample, seed, round, refill.criteria)
            rejected = evaluated(params_path, target)
    if rejected is not None:
        raise rejected


@flow(name="release", log_prints=True)
def release(params_path: str = "params.yaml", run_date: str | None = None, releases: str = paths.RELEASES,
            use_dvc: bool = True, push: bool = True) -> dict:
    """Make (or resume) the release of `run_date`: sample with the date's seed, evaluate, gate, index."""
    params = load_params(params_path)
    if use_dvc:
        for stage in MODEL_STAGES:
            dvc_stage_task(stage)
    release_id = release_id_for(run_date_of(run_date))
    seed = derive_seed(params.sample.seed, "release/seed", release_id)
    target = Path(releases) / release_id
    with release_lock(target):
        started = start_release(releases, release_id, seed, params_hash(params))
        try:
            sample_release(params, params_path, target, seed)
            evaluate_and_refill(params, params_path, target, seed)
        except GateRejected:
            annotate_dataset(target, target)
            finish_release(releases, started)
            raise
        except Exception as e:
            fail_release(releases, started, f"{type(e).__name__}: {e}")
            raise
        annotate_dataset(target, target)
        entry = finish_release(releases, started)
    pushed = dvc_push_task() if (use_dvc and push) else False
    publish_summary(target, release_id, {"release": entry.status, "dvc push": "done" if pushed else "no remote"})
    print(f"release {release_id}: {entry.status} ({entry.num_images} images) -> {target}")
    return {"release": release_id, "status": entry.status, "seed": seed}
