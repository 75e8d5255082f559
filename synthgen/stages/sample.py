"""Stage `sample`: the synthetic dataset, shard by shard, resumable (named by `SyntheticLayout`).

A run plans every sample's label and seed, keeps the shards a crashed run finished (verified by
their receipts), makes the missing ones, and writes metadata.parquet, shards.json, manifest.json and
the dataset card (`synthgen.card`). With `sample.filter` on, the filter classifier (stage train_filter)
screens every draw (`synthgen.generate.filter`) and the manifest's `filter` record gives the acceptance
rate per class. How the shards are spread over workers is the caller's (`map_shards`).
"""
from __future__ import annotations

import hashlib
import logging
import socket
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from synthgen.atomic import canonical_json
from synthgen.card import card_bytes
from synthgen.config import params_hash, resolved
from synthgen.config.params import Params
from synthgen.config.sample import SampleConfig
from synthgen.generate.filter import SampleFilter, Tally, check_acceptance
from synthgen.generate.models import load_models
from synthgen.generate.plan import SamplingPlan, class_counts_for
from synthgen.generate.shard_sampler import Provenance, ShardJob, screen_for
from synthgen.outputs import claim
from synthgen.shards import finish_dataset
from synthgen.shards.progress import resume_state
from synthgen.shards.schema import COLUMNS
from synthgen.stages.layout import AutoencoderLayout, DiffusionLayout, FilterLayout, SyntheticLayout
from synthgen.storage import is_url

log = logging.getLogger(__name__)


def build_plan(cfg: SampleConfig, class_names: list[str], seed: int | None = None) -> SamplingPlan:
    """The plan for `cfg`; `seed` overrides `cfg.seed` (a release derives its own)."""
    counts = class_counts_for(cfg.num_images, class_names, cfg.class_mix, cfg.class_weights, cfg.class_counts)
    return SamplingPlan(tuple(counts), cfg.images_per_shard, cfg.seed if seed is None else seed, SyntheticLayout.PREFIX)


def run_key(cfg: SampleConfig, seed: int, diffusion_sha256: str, autoencoder_sha256: str,
            filter_sha256: str | None = None, guide_sha256: str | None = None) -> str:
    """Identifies what a shard's bytes depend on; a receipt from another run key is not reused.

    The fields marked `unkeyed` (batch size, workers, threads, the task runner) are left out: they never change bytes.
    A filter's weights enter by their sha256 (its params are unkeyed: they change bytes only through the weights),
    as do the autoguidance guide's. The metadata columns enter by name and type, so a shard written before a column was added is made again, not
    merged with newer shards into a mixed schema.
    """
    checkpoints = {"diffusion": diffusion_sha256, "autoencoder": autoencoder_sha256}
    if filter_sha256 is not None:
        checkpoints["filter"] = filter_sha256
    if guide_sha256 is not None:
        checkpoints["guide"] = guide_sha256
    columns = [[c.name, str(c.type)] for c in COLUMNS]
    payload = canonical_json({"sample": cfg.key_dump(), "seed": seed, **checkpoints, "columns": columns})
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def pending_shards(folder: str | Path, plan: SamplingPlan, key: str) -> tuple[list[int], dict[str, dict]]:
    """Shard indices still to make, and the verified finished ones (by name)."""
    done = resume_state(folder, key)
    todo = [i for i in range(plan.num_shards) if plan.shard(i).name not in done]
    return todo, done


def filter_record(entries: list[dict[str, Any]], class_names: list[str], screen: SampleFilter | None) -> dict | None:
    """The manifest's `filter` record: the shards' tallies summed (None without a filter); fails below the floor."""
    if screen is None:
        return None
    tally = sum((Tally.from_json(e["filter"]) for e in entries), Tally.empty(len(class_names)))
    record = tally.record(class_names, screen)
    check_acceptance(record)
    return record


def finish_run(folder: str | Path, plan: SamplingPlan, entries: list[dict[str, Any]], class_names: list[str],
               config: dict[str, Any], run: dict[str, Any], screen: SampleFilter | None = None) -> dict[str, Any]:
    """Write metadata.parquet, shards.json, the dataset card and manifest.json (with run facts and the filter's
    record), the manifest last."""
    expected = {plan.shard(i).name for i in range(plan.num_shards)}
    got = {e["name"] for e in entries}
    if got != expected:
        raise RuntimeError(f"run incomplete: missing shards {sorted(expected - got)[:5]}")
    per_class = dict(zip(class_names, np.asarray(plan.class_counts).tolist()))
    return finish_dataset(folder, entries, config=config, extra={
        "run": run, "class_names": class_names, "class_counts": per_class, "status": "generated",
        "filter": filter_record(entries, class_names, screen),
    }, files=lambda manifest: {SyntheticLayout.CARD: card_bytes(folder, manifest)})


@dataclass(frozen=True)
class Inputs:
    diffusion: DiffusionLayout
    autoencoder: AutoencoderLayout
    filter: FilterLayout  # read only when sample.filter.enabled


def one_by_one(job: ShardJob, indices: list[int]) -> Iterable[dict[str, Any]]:
    return [job.make(i) for i in indices]


ShardMapper = Callable[[ShardJob, list[int]], Iterable[dict[str, Any]]]


def output_claim(out: str | Path, key: str) -> AbstractContextManager:
    """Own a local `out` for this run (`synthgen.outputs`); a bucket has no marker or lock to take."""
    return nullcontext() if is_url(out) else claim(out, "sample", run_key=key)


def run(params: Params, inputs: Inputs, out: str | Path, *, seed: int | None = None,
        map_shards: ShardMapper = one_by_one) -> dict[str, Any]:
    """The stage: `sample.num_images` images into shards in `out` (a folder or an fsspec URL), resuming a crashed
    run. `seed` overrides `sample.seed` (a release derives its own); `map_shards` makes the missing shards (in
    parallel, say)."""
    started = datetime.now(timezone.utc).isoformat()
    cfg = params.sample
    models = load_models(str(inputs.diffusion.root), str(inputs.autoencoder.root), cfg.device)
    class_names = models.diffusion.class_names
    plan = build_plan(cfg, class_names, seed)
    screen = screen_for(cfg, inputs.filter.root, models, class_names)
    filter_sha256 = screen.sha256 if screen is not None else None
    key = run_key(cfg, plan.seed, models.diffusion.sha256, models.autoencoder.sha256, filter_sha256,
                  models.diffusion.guide_sha256)
    provenance = Provenance(models.diffusion.sha256, models.autoencoder.sha256, key)
    job = ShardJob(plan, cfg, inputs.diffusion.root, inputs.autoencoder.root, class_names, provenance, out,
                   inputs.filter.root)
    with output_claim(out, key):
        todo, done = pending_shards(out, plan, key)
        log.info("%d images in %d shards: %d already done, %d to make", plan.num_images, plan.num_shards, len(done),
                 len(todo))
        entries = [*done.values(), *map_shards(job, todo)]
        run_facts = {
            "seed": plan.seed, "started_at": started, "finished_at": datetime.now(timezone.utc).isoformat(),
            "host": socket.gethostname(), "task_runner": cfg.task_runner, "resumed_shards": len(done),
            "diffusion_sha256": models.diffusion.sha256, "guide_sha256": models.diffusion.guide_sha256,
            "autoencoder_sha256": models.autoencoder.sha256,
            "filter_sha256": filter_sha256, "config_hash": key, "params_hash": params_hash(params), "out": str(out),
        }
        manifest = finish_run(out, plan, entries, class_names, resolved(params), run_facts, screen)
        return {"num_samples": manifest["num_samples"], "num_shards": manifest["num_shards"], "out": str(out)}
