"""Refill: replace the flagged samples of an evaluated dataset with new ones (same labels, new seeds).

Replacements take fresh global indices after the largest one used so far, so their seeds come from
the plan's own derivation (`derive_seed(run seed, "sample/seed", index)`) and no seed is ever used twice. Each
replacement goes into the shard of the sample it replaces, so shard names, sizes and the total stay.

A round runs in crash-safe steps inside the dataset folder:
  1. plan it from the committed dataset and journal the plan in `__refill__/round-NNN.json`;
  2. generate every replacement into the staging shard `__refill__/round-NNN.tar` (sample-stage code), with a
     receipt that keeps the filter's tally of the round's draws;
  3. rewrite each shard the plan names: kept samples, then its replacements (atomic, idempotent);
  4. commit: metadata.parquet, then manifest.json (which records the round and adds the round's draws to the
     `filter` record); then clean up.
A rerun after a crash resumes the journalled plan (it still names the committed manifest by sha256),
or sees in the manifest that the round is done. Every row of a generated dataset has `refill_round`
(0: original) and `replaces` (the key it replaced; null for originals) from the start (the declared
schema's defaults), so only the shards that lose a sample are rewritten. The evaluate -> refill loop
is the caller's.
"""
from __future__ import annotations

import json
import logging
import shutil
import tarfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pyarrow.parquet as pq

from synthgen.atomic import atomic_write_json, remove_leftovers, sha256_file
from synthgen.card import write_card
from synthgen.config.sample import SampleConfig
from synthgen.errors import SynthgenError
from synthgen.generate.models import GenerationModels
from synthgen.generate.plan import ShardPlan
from synthgen.generate.filter import SampleFilter, Tally, check_acceptance
from synthgen.generate.shard_sampler import Provenance, generate_shard
from synthgen.seeds import derive_seed
from synthgen.shards import ShardSample, ShardStoreError, finish_dataset, read_manifest, verify_dataset, write_shard
from synthgen.shards.keys import parse_sample_key, sample_key
from synthgen.shards.names import INDEX_DIR, MANIFEST, METADATA, REFILL, shard_index_name
from synthgen.shards.progress import record_done, resume_state
from synthgen.shards.schema import SAMPLE_COLUMNS
from synthgen.stages.layout import EvalLayout, SyntheticLayout
from synthgen.stages.sample import run_key

log = logging.getLogger(__name__)

CRITERIA = ("near_duplicate",)  # label faithfulness is the sample filter's (sample.filter), not refill's
ROUND_COLUMN, REPLACES_COLUMN = "refill_round", "replaces"
DATASET_FIELDS = ("format", "num_samples", "num_shards", "shards", "metadata", "config")  # finish_dataset writes them


# ---- which samples are flagged ---------------------------------------------------------------


def select_flagged(dataset_dir: str | Path, criteria: Sequence[str], evaluation_dir: str | Path | None = None) -> list[str]:
    """Keys (sorted) that quality.parquet flags by `criteria`: near_duplicate (of a training image) is true."""
    import polars as pl

    unknown = sorted(set(criteria) - set(CRITERIA))
    if unknown or not criteria:
        raise SynthgenError(f"refill criteria {list(criteria)}: choose one or more of {list(CRITERIA)}")
    path = EvalLayout(Path(evaluation_dir or dataset_dir)).quality
    if not path.is_file():
        raise SynthgenError(f"{path} is missing: evaluate {dataset_dir} before refilling it")
    read_manifest(dataset_dir)
    samples = pl.read_parquet(Path(dataset_dir) / METADATA, columns=["key", "label"])
    quality = pl.read_parquet(path, columns=["key", "near_duplicate"])
    rows = samples.join(quality, on="key", how="left")
    missing = rows.filter(pl.col("near_duplicate").is_null())["key"]
    if len(missing):
        raise SynthgenError(f"{path} has no row for {len(missing)} samples of {dataset_dir} (e.g. {missing[0]}); "
                            "it is stale: evaluate the dataset again")
    flags = {"near_duplicate": pl.col("near_duplicate")}
    return sorted(rows.filter(pl.any_horizontal([flags[c] for c in criteria]))["key"].to_list())


# ---- the plan of a round ---------------------------------------------------------------------


@dataclass(frozen=True)
class Replacement:
    key: str
    index: int  # global sample index: the seed is derive_seed(run seed, "sample/seed", index)
    label: int  # the requested label of the sample it replaces
    seed: int
    replaces: str
    shard: str  # the shard it goes into: that of the sample it replaces


@dataclass(frozen=True)
class RefillPlan:
    round: int
    base_manifest_sha256: str  # the committed manifest this round starts from
    config_hash: str  # run key of the params, seed and checkpoints that made the dataset
    criteria: tuple[str, ...]
    flagged: tuple[str, ...]
    keep: dict[str, list[str]]  # shard name -> keys kept, in order; every shard the round rewrites
    replacements: tuple[Replacement, ...]
    next_index: int  # first global index no sample has used after this round

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "replacements": [asdict(r) for r in self.replacements]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "RefillPlan":
        return cls(**{**data, "criteria": tuple(data["criteria"]), "flagged": tuple(data["flagged"]),
                      "replacements": tuple(Replacement(**r) for r in data["replacements"])})


def round_stem(round: int) -> str:
    return f"round-{round:03d}"


def plan_path(folder: Path, round: int) -> Path:
    return folder / REFILL / f"{round_stem(round)}.json"


def global_index(key: str) -> int:
    try:
        return parse_sample_key(SyntheticLayout.PREFIX, key)
    except ValueError as e:
        raise SynthgenError(f"{e}: only sample-stage datasets can be refilled") from None


def key_of(cfg: SampleConfig, seed: int, models: GenerationModels, screen: SampleFilter | None) -> str:
    """The sample stage's run key of (cfg, seed, models, filter)."""
    return run_key(cfg, seed, models.diffusion.sha256, models.autoencoder.sha256,
                   screen.sha256 if screen is not None else None, models.diffusion.guide_sha256)


def check_made_by(rows: dict[str, list], key: str, seed: int) -> str:
    """`key` (the run key of the refill's params, seed and models) must be the one every sample was made with."""
    made_with = sorted(set(rows.get("config_hash") or [None]))
    if made_with != [key]:
        raise SynthgenError(
            f"the dataset was made with run key {made_with[:2]}, but these sample params, seed {seed} and checkpoints "
            f"give {key}; refill with the params, seed and models that made it")
    return key


def make_plan(folder: Path, manifest: dict[str, Any], flagged: Sequence[str], round: int, seed: int,
              criteria: Sequence[str], rows: dict[str, list], config_hash: str) -> RefillPlan:
    """Round `round` from the committed dataset: which samples go, their replacements, the shards rewritten."""
    position = {k: i for i, k in enumerate(rows["key"])}
    unknown = sorted(set(flagged) - position.keys())
    if unknown:
        raise SynthgenError(f"flagged keys {unknown[:3]} are not samples of {folder} ({len(unknown)} unknown)")
    indices = [global_index(k) for k in rows["key"]]
    recorded = manifest.get("refill", {}).get("next_index", 0)
    next_index = max(recorded, max(indices) + 1)
    gone = sorted(set(flagged), key=lambda k: indices[position[k]])
    replacements = tuple(
        Replacement(sample_key(SyntheticLayout.PREFIX, i), i, int(rows["label"][position[k]]), derive_seed(seed, "sample/seed", i), k,
                    rows["shard"][position[k]])
        for i, k in enumerate(gone, start=next_index))
    touched, going = {r.shard for r in replacements}, set(gone)
    rewrite = [s["name"] for s in manifest["shards"] if s["name"] in touched]
    keep: dict[str, list[str]] = {name: [] for name in rewrite}
    for key, shard in zip(rows["key"], rows["shard"]):
        if shard in keep and key not in going:
            keep[shard].append(key)
    return RefillPlan(round, sha256_file(folder / MANIFEST), config_hash, tuple(criteria), tuple(gone), keep,
                      replacements, next_index + len(gone))


def committed_rows(folder: Path, manifest: dict[str, Any]) -> dict[str, list]:
    """metadata.parquet as columns, after checking that every shard and the metadata match the manifest."""
    bad = verify_dataset(folder)
    if bad or sha256_file(folder / METADATA) != manifest["metadata"]["sha256"]:
        raise ShardStoreError(f"{folder} fails its checksums ({(bad or [METADATA])[:3]}); it cannot be refilled")
    return pq.read_table(folder / METADATA).to_pydict()


# ---- carrying a plan out ---------------------------------------------------------------------


@dataclass(frozen=True)
class RefillProvenance(Provenance):
    """Provenance of replacements: the sample stage's columns plus the round and the key each replaces."""

    round: int = 0
    replaces: tuple[str, ...] = ()  # the key each replacement replaces, in staging-shard order

    def row(self, cfg: SampleConfig, seed: int, position: int) -> dict[str, Any]:
        return {**super().row(cfg, seed, position), ROUND_COLUMN: self.round, REPLACES_COLUMN: self.replaces[position]}


def shard_index(tar_path: Path) -> Path:
    return tar_path.parent / shard_index_name(tar_path.name)


def shard_samples(tar_path: Path) -> dict[str, ShardSample]:
    """Every sample of a shard, rebuilt from its tar members and its index rows, by key."""
    members: dict[str, dict[str, bytes]] = {}
    with tarfile.open(tar_path) as tar:
        for info in tar:
            key, _, ext = info.name.partition(".")
            members.setdefault(key, {})[ext] = tar.extractfile(info).read()
    samples = {}
    for row in pq.read_table(shard_index(tar_path)).to_pylist():
        if row["key"] not in members:  # the index may be one write ahead of its tar
            continue
        meta = {k: v for k, v in row.items() if k not in SAMPLE_COLUMNS}
        samples[row["key"]] = ShardSample(row["key"], members[row["key"]][row["format"]], row["label"],
                                          row["class_name"], row["width"], row["height"], row["format"], meta)
    return samples


def staging_shard(folder: Path, plan: RefillPlan, models: GenerationModels, cfg: SampleConfig,
                  class_names: list[str], screen: SampleFilter | None) -> dict[str, Any]:
    """Generate the round's replacements with the sample stage's code, screened by the sample stage's filter,
    into `__refill__/round-NNN.tar` (once, with a receipt); its entry, with the filter's tally under "filter"."""
    staging, name = folder / REFILL, f"{round_stem(plan.round)}.tar"
    done = resume_state(staging, plan.config_hash)
    if name in done:
        return done[name]  # published by an earlier attempt of this round
    reps = plan.replacements
    shard = ShardPlan(plan.round, name, np.array([r.index for r in reps]), np.array([r.label for r in reps]),
                      tuple(r.seed for r in reps))
    provenance = RefillProvenance(models.diffusion.sha256, models.autoencoder.sha256, plan.config_hash, plan.round,
                                  tuple(r.replaces for r in reps))
    entry = generate_shard(models, shard, cfg, class_names, provenance, staging, screen=screen)
    record_done(staging, entry, plan.config_hash)
    return entry


def filter_record(manifest: dict[str, Any], staged: dict[str, Any], screen: SampleFilter | None) -> dict | None:
    """The manifest's `filter` record with the round's draws (the staging shard's tally) added; None without a filter.

    Fails, before anything is committed, when a class's acceptance over all its draws falls below the floor."""
    if screen is None:
        return manifest.get("filter")
    names = manifest["class_names"]
    record = (Tally.from_record(manifest["filter"], names) + Tally.from_json(staged["filter"])).record(names, screen)
    check_acceptance(record)
    return record


def rewrite_shards(folder: Path, plan: RefillPlan, staged: dict[str, ShardSample]) -> dict[str, dict[str, Any]]:
    """Rewrite each planned shard as its kept samples then its replacements; their new manifest entries."""
    entries = {}
    for name, keep in plan.keep.items():
        current = shard_samples(folder / name)
        new = [staged[r.key] for r in plan.replacements if r.shard == name]
        entries[name] = write_shard(folder / name, [current[k] for k in keep] + new)
    return entries


def commit(folder: Path, manifest: dict[str, Any], plan: RefillPlan, entries: dict[str, dict[str, Any]],
           filtered: dict | None) -> dict:
    """metadata.parquet, then manifest.json recording the round and the `filter` record `filtered`; the verdict of an
    earlier evaluation is dropped."""
    shards = [entries.get(s["name"], s) for s in manifest["shards"]]
    if sum(s["count"] for s in shards) != manifest["num_samples"]:
        raise RuntimeError(f"refill of {folder} would change its sample count; nothing was committed")
    before = manifest.get("refill", {})
    history = [*before.get("history", []), {"round": plan.round, "replaced": len(plan.flagged),
                                            "criteria": list(plan.criteria)}]
    record = {"rounds": plan.round, "replaced": sum(h["replaced"] for h in history), "criteria": list(plan.criteria),
              "next_index": plan.next_index, "history": history}
    extra = {k: v for k, v in manifest.items() if k not in (*DATASET_FIELDS, "gate_reasons")}
    return finish_dataset(folder, shards, config=manifest["config"],
                          extra={**extra, "status": "generated", "refill": record, "filter": filtered})


def tidy(folder: Path) -> None:
    """After a commit: the dataset card, and no journal or staging shard left."""
    write_card(folder)
    clear_staging(folder)


def clear_staging(folder: Path) -> None:
    """Remove every journal and staging shard (of a committed round, or of a plan that no longer applies)."""
    if (folder / REFILL).is_dir():
        shutil.rmtree(folder / REFILL)


# ---- the round -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RefillProgress:
    rounds: int  # rounds committed in the manifest
    pending: int | None  # a journalled round that a crash interrupted, if any

    @property
    def started(self) -> bool:
        return self.rounds > 0 or self.pending is not None


def pending_plan(folder: Path) -> RefillPlan | None:
    """The journalled plan that starts from the committed manifest, if a crashed round left one."""
    if not (folder / MANIFEST).is_file() or not (folder / REFILL).is_dir():
        return None
    sha = sha256_file(folder / MANIFEST)
    for path in sorted((folder / REFILL).glob("round-*.json")):
        plan = RefillPlan.from_json(json.loads(path.read_text()))
        if plan.base_manifest_sha256 == sha:
            return plan
    return None


def refill_progress(dataset_dir: str | Path) -> RefillProgress:
    """Rounds committed in the dataset's manifest and the round a crash left pending (none without a manifest)."""
    folder = Path(dataset_dir)
    if not (folder / MANIFEST).is_file():
        return RefillProgress(0, None)
    plan = pending_plan(folder)
    return RefillProgress(read_manifest(folder).get("refill", {}).get("rounds", 0), plan.round if plan else None)


def refill_dataset(dataset_dir: str | Path, flagged_keys: Sequence[str] | None, models: GenerationModels,
                   sample_cfg: SampleConfig, seed: int, round: int, criteria: Sequence[str] = (),
                   screen: SampleFilter | None = None) -> dict[str, Any]:
    """Replace `flagged_keys` of the dataset (made with `sample_cfg` and run seed `seed`) in refill round `round`,
    each replacement screened by `screen` (the sample stage's filter; None: unscreened).

    Idempotent: a round the manifest records is not made again; a round a crash interrupted is
    finished from its journal (then `flagged_keys` may be None). Returns what the round did.
    """
    if round < 1:
        raise SynthgenError(f"refill rounds count from 1, not {round}")
    folder = Path(dataset_dir)
    manifest = read_manifest(folder)
    done = manifest.get("refill", {}).get("rounds", 0)
    if round <= done:
        if pending_plan(folder) is None:  # a crash may have come between the commit and the tidying
            tidy(folder)
        return {"round": round, "replaced": manifest["refill"]["history"][round - 1]["replaced"],
                "num_samples": manifest["num_samples"], "rounds": done, "resumed": True}
    if round != done + 1:
        raise SynthgenError(f"refill round {round} of {folder} needs round {round - 1} first ({done} done)")
    for sub in (folder, folder / INDEX_DIR, folder / REFILL, folder / REFILL / INDEX_DIR):
        remove_leftovers(sub)
    key = key_of(sample_cfg, seed, models, screen)
    plan, resumed = resume_or_plan(folder, manifest, flagged_keys, key, seed, round, criteria)
    if plan is None:
        return {"round": round, "replaced": 0, "num_samples": manifest["num_samples"], "rounds": done, "resumed": False}
    EvalLayout(folder).quality.unlink(missing_ok=True)  # it describes samples that are going
    staged = staging_shard(folder, plan, models, sample_cfg, manifest["class_names"], screen)
    record = filter_record(manifest, staged, screen)  # may fail the round: before any shard is rewritten
    entries = rewrite_shards(folder, plan, shard_samples(folder / REFILL / staged["name"]))
    committed = commit(folder, manifest, plan, entries, record)
    tidy(folder)
    log.info("refill round %d of %s: replaced %d samples", round, folder, len(plan.flagged))
    return {"round": round, "replaced": len(plan.flagged), "num_samples": committed["num_samples"], "rounds": round,
            "resumed": resumed, "flagged": list(plan.flagged), "replacements": [r.key for r in plan.replacements]}


def resume_or_plan(folder: Path, manifest: dict[str, Any], flagged_keys: Sequence[str] | None, key: str, seed: int,
                   round: int, criteria: Sequence[str]) -> tuple[RefillPlan | None, bool]:
    """The interrupted round's journalled plan (resumed: True), else a new journalled one (None: nothing flagged)."""
    plan = pending_plan(folder)
    if plan is not None:
        if plan.round != round:
            raise SynthgenError(f"{folder} has an interrupted refill round {plan.round}; finish it before round {round}")
        if flagged_keys is not None and set(flagged_keys) != set(plan.flagged):
            log.warning("refill round %d of %s resumes its journal, which names other flagged keys", round, folder)
        if key != plan.config_hash:
            raise SynthgenError(f"the interrupted refill round {round} of {folder} was planned with other sample "
                                "params, seed or checkpoints; resume it with those")
        return plan, True
    if flagged_keys is None:
        raise SynthgenError(f"no interrupted refill round to resume in {folder}; pass the flagged keys")
    if not flagged_keys:
        return None, False
    rows = committed_rows(folder, manifest)
    config_hash = check_made_by(rows, key, seed)
    plan = make_plan(folder, manifest, flagged_keys, round, seed, criteria, rows, config_hash)
    clear_staging(folder)
    atomic_write_json(plan_path(folder, round), plan.to_json())
    return plan, False
