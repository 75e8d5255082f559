"""`synthgen inspect`: what a dataset folder, a release or a releases root holds, as plain text.

`summarise` returns a JSON-friendly dict (counts, classes, shard checksums, generation settings,
metrics, gate verdict); `format_summary` prints it. Metadata is read with pyarrow, column by column,
so this also runs where polars is not installed.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from synthgen.errors import SynthgenError
from synthgen.metrics.specs import INSPECT_METRICS
from synthgen.releases.consumer import is_releases_root, manifest_mismatch
from synthgen.releases.index import FINAL, METRICS_FILE, gate_verdict, read_index
from synthgen.shards.manifest import MANIFEST, METADATA, ShardStoreError, read_manifest
from synthgen.storage import Store, is_url, join, open_store, split_location
from synthgen.verify import dataset_failures, release_entry, release_failures

QUALITY = "quality.parquet"
GENERATION_COLUMNS = ("sampler", "steps", "eta", "guidance_scale", "guidance_method")  # per-sample metadata written by `sample`
IMAGE_COLUMNS = ("format", "width", "height")
LABEL_WIDTH = 15  # the left column of the printed summary


class InspectError(SynthgenError):
    """The path is neither a dataset folder nor a releases root."""


def summarise(path: str | Path, verify: bool = True, metrics_file: str | Path | None = None) -> dict[str, Any]:
    """Summarise a dataset folder or release (`manifest.json`) or a releases root (`index.parquet`).

    `verify` re-hashes every shard against the manifest (reads every byte); a release's manifest is
    always checked against its index row. `metrics_file` names a metrics.json kept elsewhere
    (default: the folder's own, if any). `passed` tells whether every check passed. `path` may be
    an fsspec URL of a dataset folder.
    """
    path = path if is_url(path) else Path(path)
    if is_releases_root(path):
        return summarise_releases(path)
    if open_store(path).exists(MANIFEST):
        try:
            return summarise_dataset(path, verify, metrics_file)
        except ShardStoreError as e:
            raise InspectError(str(e)) from None
    raise InspectError(f"{path} is neither a dataset folder (no {MANIFEST}) nor a releases root (no index.parquet)")


def summarise_releases(root: Path | str) -> dict[str, Any]:
    entries = read_index(root)
    published = [e.release_id for e in entries if e.status == "published"]
    mismatches = [manifest_mismatch(join(root, e.release_id), e) for e in entries if e.status in FINAL]
    return {
        "kind": "releases",
        "path": str(root),
        "latest_published": published[-1] if published else None,
        "releases": [_jsonable(e.to_row()) for e in entries],
        "verification": {"ok": not any(mismatches), "checked_shards": None, "failures": [m for m in mismatches if m]},
    }


def summarise_dataset(folder: Path | str, verify: bool = True,
                      metrics_file: str | Path | None = None) -> dict[str, Any]:
    manifest = read_manifest(folder)
    metadata = _read_columns(open_store(folder), METADATA, ("label", "class_name", *IMAGE_COLUMNS, *GENERATION_COLUMNS))
    release = release_entry(folder)
    verdict = gate_verdict(folder)
    return {
        "kind": "release" if release else "dataset",
        "path": str(folder),
        "release": _jsonable(release.to_row()) if release else None,
        "num_samples": manifest["num_samples"],
        "num_shards": manifest["num_shards"],
        "shard_bytes": sum(s["bytes"] for s in manifest["shards"]),
        "verification": verification(folder, manifest, verify),
        "classes": class_counts(metadata),
        "images": image_counts(metadata),
        "generation": {c: value_counts(metadata, c) for c in GENERATION_COLUMNS if c in metadata.column_names},
        "gate": {"status": verdict[0], "reasons": verdict[1]} if verdict else None,
        "metrics": flat_metrics(metrics_file or join(folder, METRICS_FILE)),
        "quality": _parquet_shape(join(folder, QUALITY)),
    }


def verification(folder: Path | str, manifest: Mapping[str, Any], shards: bool = True) -> dict[str, Any]:
    """A release's manifest against its index row and, with `shards`, the shards and metadata.parquet
    re-hashed against the manifest; `checked_shards` is None when they were not."""
    failures = release_failures(folder) + (dataset_failures(folder, manifest) if shards else [])
    return {"ok": not failures, "checked_shards": manifest["num_shards"] if shards else None, "failures": failures}


def passed(summary: Mapping[str, Any]) -> bool:
    """Whether every check `summarise` made passed."""
    return summary["verification"]["ok"]


def _read_columns(store: Store, name: str, wanted: tuple[str, ...]) -> pa.Table:
    table = pq.read_table(pa.BufferReader(store.read_bytes(name)))
    return table.select([c for c in wanted if c in table.column_names])


def class_counts(metadata: pa.Table) -> dict[str, int]:
    """Samples per class name, in label order."""
    grouped = metadata.group_by(["label", "class_name"]).aggregate([("label", "count")]).sort_by("label")
    return dict(zip(grouped["class_name"].to_pylist(), grouped["label_count"].to_pylist()))


def value_counts(metadata: pa.Table, column: str) -> dict[Any, int]:
    """How many samples have each value of `column`, in value order."""
    counts = pc.value_counts(metadata[column]).to_pylist()
    return {c["values"]: c["counts"] for c in sorted(counts, key=lambda c: (c["values"] is None, c["values"]))}


def image_counts(metadata: pa.Table) -> dict[str, dict[str, int]]:
    """Samples per image format and per size (`WxH`)."""
    size = pc.binary_join_element_wise(pc.cast(metadata["width"], pa.string()),
                                       pc.cast(metadata["height"], pa.string()), "x")
    return {"format": value_counts(metadata, "format"), "size": value_counts(pa.table({"size": size}), "size")}


def flat_metrics(path: str | Path) -> dict[str, Any]:
    """metrics.json flattened to dotted keys (`a.b`), numbers and strings only; empty if absent."""
    store, name = split_location(path)
    if not store.exists(name):
        return {}
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        elif isinstance(value, (int, float, str)) and not isinstance(value, bool):
            flat[prefix] = value

    walk("", json.loads(store.read_bytes(name)))
    return flat


def _parquet_shape(path: str | Path) -> dict[str, Any] | None:
    store, name = split_location(path)
    if not store.exists(name):
        return None
    meta = pq.read_metadata(pa.BufferReader(store.read_bytes(name)))
    return {"rows": meta.num_rows, "columns": meta.schema.to_arrow_schema().names}


def _jsonable(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in row.items()}


# ---- printing ----------------------------------------------------------------------------------

def _num(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 2**10:.1f} KiB"


def _when(iso: str | None) -> str:
    return iso[:16].replace("T", " ") if iso else "-"  # minutes are enough to tell runs apart


def _line(label: str, text: str) -> str:
    return f"{label:<{LABEL_WIDTH - 1}} {text}"  # at least one space after a label of the full width


def _block(title: str, items: Mapping[Any, Any]) -> list[str]:
    if not items:
        return []
    width = max(len(str(k)) for k in items)
    return [title] + [f"  {str(k):<{width}}  {_num(v)}" for k, v in items.items()]


def _counts(counts: Mapping[Any, int]) -> str:
    return ", ".join(f"{k}: {_num(v)}" for k, v in counts.items())


def _verification_lines(check: Mapping[str, Any]) -> list[str]:
    if not check["ok"]:
        return [_line("verified", f"FAILED: {len(check['failures'])} problems")] + [f"  - {f}" for f in check["failures"]]
    if check["checked_shards"] is None:
        return [_line("verified", "skipped")]
    return [_line("verified", f"ok: {check['checked_shards']} shards and {METADATA} match {MANIFEST}")]


def _format_dataset(s: Mapping[str, Any]) -> list[str]:
    lines = [_line("path", s["path"])]
    if s["release"]:
        r = s["release"]
        finished = _when(r["finished_at"])
        lines.append(_line("release", f"{r['release_id']} {r['status']} (seed {r['seed']}, finished {finished})"))
    lines.append(_line("samples", f"{_num(s['num_samples'])} in {s['num_shards']} shards ({_size(s['shard_bytes'])})"))
    lines += _verification_lines(s["verification"])
    if s["gate"]:
        lines.append(_line("gate", s["gate"]["status"]))
        lines += [f"  - {reason}" for reason in s["gate"]["reasons"]]
    lines += _block(_line("classes", str(len(s["classes"]))), s["classes"])
    lines += [_line(name, _counts(counts)) for name, counts in {**s["images"], **s["generation"]}.items()]
    lines += _block("metrics", s["metrics"])
    if s["quality"]:
        lines.append(_line("quality", f"{_num(s['quality']['rows'])} rows: {', '.join(s['quality']['columns'])}"))
    return lines


RELEASE_COLUMNS = ("release_id", "status", "num_images", "num_shards", *INSPECT_METRICS, "finished_at")


def _cell(row: Mapping[str, Any], column: str) -> str:
    return _when(row[column]) if column == "finished_at" else _num(row[column])


def _format_releases(s: Mapping[str, Any]) -> list[str]:
    lines = [_line("releases", f"{s['path']}  ({len(s['releases'])} releases, "
                               f"latest published: {s['latest_published'] or 'none'})")]
    lines += [] if s["verification"]["ok"] else _verification_lines(s["verification"])
    if not s["releases"]:
        return lines
    table = [list(RELEASE_COLUMNS)] + [[_cell(r, c) for c in RELEASE_COLUMNS] for r in s["releases"]]
    widths = [max(len(row[i]) for row in table) for i in range(len(RELEASE_COLUMNS))]
    return lines + ["  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in table]


def format_summary(summary: Mapping[str, Any]) -> str:
    """`summarise`'s dict as print-friendly plain text."""
    lines = _format_releases(summary) if summary["kind"] == "releases" else _format_dataset(summary)
    return "\n".join(lines) + "\n"
