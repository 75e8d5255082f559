"""The dataset card (`README.md`) of a synthetic dataset or release.

Its YAML front matter is what Hugging Face `datasets` reads: `configs` points at the shards only, and
`dataset_info.features` gives the image, the label as a `ClassLabel` with the class names, and the
metadata row, so `datasets.load_dataset(folder)` loads the folder as it is. The body says how the data
was made, the gate's verdict and headline metrics (a release), the label filter (when one screened the
samples), the classes, the files, the Parquet schema and how to load it.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from synthgen.metrics.specs import METRICS
from synthgen.shards import read_manifest
from synthgen.shards.keys import shard_glob, shard_pattern
from synthgen.shards.names import INDEX_DIR, MANIFEST, METADATA, WIDS_INDEX
from synthgen.shards.schema import REQUIRED, Column, columns_for, read_class_names
from synthgen.stages.layout import EvalLayout, SyntheticLayout
from synthgen.storage import open_store

HF_DTYPES = {pa.string(): "string", pa.int32(): "int32", pa.int64(): "int64", pa.float64(): "float64"}
SIZE_CATEGORIES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                   (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B"))
VERDICTS = ("published", "rejected")  # manifest statuses that carry a gate verdict
HEADLINE = tuple(m for m in METRICS if m.index)  # the key metrics a releases index row holds


def size_category(n: int) -> str:
    return next((name for bound, name in SIZE_CATEGORIES if n < bound), "n>1B")


def hf_features(image_format: str, class_names: Sequence[str], columns: Sequence[Column]) -> list[dict[str, Any]]:
    """`dataset_info.features` of the shards: the tar members `<format>`, `cls` and `json`, by extension."""
    return [
        {"name": image_format, "dtype": "image"},
        {"name": "cls", "dtype": {"class_label": {"names": {str(i): n for i, n in enumerate(class_names)}}}},
        {"name": "json", "struct": [{"name": c.name, "dtype": HF_DTYPES[c.type]} for c in columns]},
    ]


def front_matter(manifest: dict[str, Any], columns: Sequence[Column], class_names: Sequence[str]) -> dict[str, Any]:
    """The card's YAML: the shards as the one config, their features, license, tags and size."""
    sample = manifest["config"].get("sample", {})
    return {
        "configs": [{"config_name": "default", "default": True,
                     "data_files": [{"split": "train", "path": shard_glob(SyntheticLayout.PREFIX)}]}],
        "dataset_info": {"features": hf_features(sample.get("image_format", "png"), class_names, columns)},
        "license": sample.get("license", "other"),
        "tags": ["synthetic"],
        "task_categories": ["image-classification"],
        "size_categories": [size_category(manifest["num_samples"])],
    }


def schema_table(columns: Sequence[Column]) -> str:
    """The Parquet schema as a Markdown table: column, Arrow type, default, meaning."""
    rows = [f"| `{c.name}` | {c.type} | {'-' if c.default is REQUIRED else json.dumps(c.default)} | {c.doc} |"
            for c in columns]
    return "\n".join(["| column | type | default | meaning |", "| --- | --- | --- | --- |", *rows])


def _value(spec, metrics: dict[str, Any]) -> str:
    value = metrics.get(spec.key)
    return "-" if value is None else format(value, spec.fmt)


def verdict_section(manifest: dict[str, Any], metrics: dict[str, Any]) -> str:
    """The gate's verdict and the headline metrics (empty unless the manifest carries a verdict)."""
    if manifest.get("status") not in VERDICTS:
        return ""
    reasons = "".join(f"\n- {r}" for r in manifest.get("gate_reasons", []))
    rows = "\n".join(f"| {m.label} | {_value(m, metrics)} |" for m in HEADLINE if m.key in metrics)
    return f"""
## Quality gate: {manifest['status']}
{reasons}

| metric | value |
| --- | --- |
{rows}
"""


def rate(accepted: int, attempts: int) -> str:
    return f"{accepted / attempts:.1%}" if attempts else "-"


def filter_section(manifest: dict[str, Any]) -> str:
    """How the labels were screened: the sample filter, its settings and its acceptance per class (empty without one)."""
    record = manifest.get("filter")
    if not record:
        return ""
    rows = "\n".join(f"| {name} | {c['attempts']} | {c['accepted']} | {rate(c['accepted'], c['attempts'])} |"
                     for name, c in record["per_class"].items())
    return f"""
## Label filter

Every sample was accepted by a filter classifier (weights sha256 `{record['classifier_sha256']}`) that gave its
requested class a probability of at least {record['min_confidence']}; a rejected image was replaced by a fresh sample
of the same label, at most {record['max_attempts']} attempts per sample. {record['accepted']} of {record['attempts']}
attempts were accepted ({rate(record['accepted'], record['attempts'])}): the generator's raw quality as the filter
sees it. The evaluation's conditional accuracy comes from a different, independent classifier. Each row has
`attempts` (1: accepted at the first try) and `filter_confidence`; `filter` in `{MANIFEST}`.

| class | attempts | accepted | acceptance rate |
| --- | --- | --- | --- |
{rows}
"""


def refill_section(manifest: dict[str, Any]) -> str:
    record = manifest.get("refill")
    if not record:
        return ""
    return (f"\n## Refill\n\nFlagged samples ({', '.join(record['criteria'])}) were replaced by new samples of the "
            f"same label with fresh seeds: {record['replaced']} replaced in {record['rounds']} refill round(s). "
            "Columns `refill_round` (0: original) and `replaces` (the key a sample replaced); `refill` in "
            f"`{MANIFEST}`.\n")


def card_text(manifest: dict[str, Any], columns: Sequence[Column], class_counts: dict[str, int],
              metrics: dict[str, Any]) -> str:
    """The whole card: front matter, then the prose. `class_counts`: images per class, in label order."""
    sample = manifest["config"].get("sample", {})
    sampler = sample.get("sampler", {})
    run = manifest.get("run", {})
    fmt = sample.get("image_format", "png")
    classes = "\n".join(f"| {i} | {name} | {n} |" for i, (name, n) in enumerate(class_counts.items()))
    folder = run.get("out", ".")
    shards = shard_pattern(SyntheticLayout.PREFIX)
    return f"""---
{yaml.safe_dump(front_matter(manifest, columns, list(class_counts)), sort_keys=False)}---

# Synthetic dataset

{manifest['num_samples']} synthetic images in {manifest['num_shards']} WebDataset shards, made by synthgen with
latent diffusion: sampler `{sampler.get('name')}`, {sampler.get('steps')} steps, eta {sampler.get('eta')},
guidance scale {sampler.get('guidance_scale')}, run seed {run.get('seed')}.

- Diffusion checkpoint sha256: `{run.get('diffusion_sha256')}`
- Autoencoder checkpoint sha256: `{run.get('autoencoder_sha256')}`
- Params hash: `{run.get('params_hash')}`; the resolved params are under `config` in `{MANIFEST}`.
{verdict_section(manifest, metrics)}{filter_section(manifest)}
## Classes

| label | class | images |
| --- | --- | --- |
{classes}

## Files

- `{shards}.tar`: samples `<key>.{fmt}` (image), `<key>.cls` (label), `<key>.json` (its metadata row).
- `{METADATA}`: every metadata row, one per sample; its key-value metadata holds the store format and the
  class names (JSON).
- `{WIDS_INDEX}`: the shard list for `wids.ShardListDataset` (random access).
- `{MANIFEST}`: shards with sample counts, bytes and sha256; run facts; status. Written last.
- `{INDEX_DIR}/{shards}.parquet`: each shard's own rows (bookkeeping, like the other `__` folders).

## Schema

Each row of `{METADATA}` (and each `<key>.json`):

{schema_table(columns)}

## Loading

```python
import datasets
ds = datasets.load_dataset("{folder}", split="train")  # {fmt}: image, cls: ClassLabel, json: the row

import synthgen, polars as pl
ds = synthgen.open_dataset("{folder}", where=pl.col("label") == 0, batch_size=64)

import wids
ds = wids.ShardListDataset("{folder}/{WIDS_INDEX}")  # ds[i]: the i-th sample, in manifest order
```

or with plain webdataset: `webdataset.WebDataset(sorted(glob.glob("{shard_glob(SyntheticLayout.PREFIX)}"))).decode("rgb")`,
or with polars/DuckDB on `{METADATA}`. Any sample can be remade exactly: `synthgen regenerate <key>`.
{refill_section(manifest)}"""


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def class_counts(metadata: pq.ParquetFile) -> dict[str, int]:
    """Images per class name, in label order, from `metadata.parquet` and the class names it records."""
    names = read_class_names(metadata.schema_arrow)
    counts = np.bincount(metadata.read(columns=["label"])["label"].to_numpy(), minlength=len(names))
    return {name if name is not None else str(label): int(n) for label, (name, n) in enumerate(zip(names, counts))}


def card_bytes(folder: str | os.PathLike, manifest: dict[str, Any]) -> bytes:
    """The card of the dataset folder (a path or a URL) whose metadata.parquet is written and whose manifest is
    `manifest` (about to be committed, or committed), with its evaluation's metrics if it holds them."""
    store = open_store(folder)
    metrics_name = EvalLayout(Path()).metrics.name
    metrics = json.loads(store.read_bytes(metrics_name)) if store.exists(metrics_name) else {}
    with store.open(METADATA) as f:
        metadata = pq.ParquetFile(f)
        text = card_text(manifest, columns_for(metadata.schema_arrow.names), class_counts(metadata), metrics)
    return text.encode()


def write_card(folder: str | os.PathLike, manifest: dict[str, Any] | None = None) -> None:
    """Write the card for `manifest` (default: the committed one); publish it before a new manifest."""
    store = open_store(folder)
    store.put_atomic(SyntheticLayout.CARD, card_bytes(folder, manifest or read_manifest(folder)))
