"""A generation run around the per-shard work: plan, resume state, and the finished dataset."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from synthgen.atomic import atomic_write_bytes, canonical_json
from synthgen.config.sample import SampleConfig
from synthgen.generate.plan import SamplingPlan, class_counts_for
from synthgen.shards import finish_dataset
from synthgen.shards.progress import resume_state

PREFIX = "synthetic"


def build_plan(cfg: SampleConfig, class_names: list[str], seed: int | None = None) -> SamplingPlan:
    """The plan for `cfg`; `seed` overrides `cfg.seed` (a release derives its own)."""
    counts = class_counts_for(cfg.num_images, class_names, cfg.class_mix, cfg.class_weights, cfg.class_counts)
    return SamplingPlan(tuple(counts), cfg.images_per_shard, cfg.seed if seed is None else seed, PREFIX)


def run_key(cfg: SampleConfig, seed: int, diffusion_sha256: str, autoencoder_sha256: str) -> str:
    """Identifies what a shard's bytes depend on; a receipt from another run key is not reused.

    Batch size, workers, encode threads and the task runner are left out: they never change bytes.
    """
    relevant = cfg.model_dump(mode="json", exclude={
        "batch_size", "encode_workers", "cpu_threads", "task_runner", "max_workers", "ray_address", "ray_num_gpus", "ray_num_cpus",
    })
    payload = canonical_json({"sample": relevant, "seed": seed, "diffusion": diffusion_sha256,
                              "autoencoder": autoencoder_sha256})
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def pending_shards(folder: str | Path, plan: SamplingPlan, key: str) -> tuple[list[int], dict[str, dict]]:
    """Shard indices still to make, and the verified finished ones (by name)."""
    done = resume_state(folder, key)
    todo = [i for i in range(plan.num_shards) if plan.shard(i).name not in done]
    return todo, done


def finish_run(folder: str | Path, plan: SamplingPlan, entries: list[dict[str, Any]], class_names: list[str],
               config: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    """Write metadata.parquet, manifest.json (with run facts) and the dataset card."""
    expected = {plan.shard(i).name for i in range(plan.num_shards)}
    got = {e["name"] for e in entries}
    if got != expected:
        raise RuntimeError(f"run incomplete: missing shards {sorted(expected - got)[:5]}")
    per_class = dict(zip(class_names, np.asarray(plan.class_counts).tolist()))
    manifest = finish_dataset(folder, entries, config=config, extra={
        "run": run, "class_names": class_names, "class_counts": per_class, "status": "generated",
    })
    atomic_write_bytes(Path(folder) / "README.md", dataset_card(manifest).encode())
    return manifest


def dataset_card(manifest: dict[str, Any]) -> str:
    """A human-readable card: how the data was made, what it holds, how to load it."""
    sample = manifest["config"].get("sample", {})
    sampler = sample.get("sampler", {})
    run = manifest.get("run", {})
    rows = "\n".join(f"| {i} | {name} | {n} |" for i, (name, n) in enumerate(manifest["class_counts"].items()))
    return f"""# Synthetic dataset

{manifest['num_samples']} synthetic images in {manifest['num_shards']} WebDataset shards, made by synthgen with
latent diffusion: sampler `{sampler.get('name')}`, {sampler.get('steps')} steps, eta {sampler.get('eta')},
guidance scale {sampler.get('guidance_scale')}, run seed {run.get('seed')}.

- Diffusion checkpoint sha256: `{run.get('diffusion_sha256')}`
- Autoencoder checkpoint sha256: `{run.get('autoencoder_sha256')}`
- Params hash: `{run.get('params_hash')}`; the resolved params are under `config` in `manifest.json`.

## Classes

| label | class | images |
| --- | --- | --- |
{rows}

## Files

- `synthetic-NNNNNN.tar`: samples `<key>.{sample.get('image_format', 'png')}` (image), `<key>.cls` (label),
  `<key>.json` (its metadata row).
- `synthetic-NNNNNN.parquet`: the shard's index; `metadata.parquet`: every row, one per sample.
- `manifest.json`: shards with sample counts, bytes and sha256; run facts; status.

Columns: key, shard, index, label, class_name, sha256 (of the encoded image), width, height, format,
seed (the sample's own noise seed), sampler, steps, eta, guidance_scale, timestep_spacing,
diffusion_sha256, autoencoder_sha256, config_hash.

## Loading

```python
import synthgen, polars as pl
ds = synthgen.open_dataset("{Path(run.get('out', '.')).as_posix()}", where=pl.col("label") == 0, batch_size=64)
```

or with plain webdataset: `webdataset.WebDataset(sorted(glob.glob("synthetic-*.tar"))).decode("rgb")`,
or with polars/DuckDB on `metadata.parquet`. Any sample can be remade exactly: `synthgen regenerate <key>`.
"""
