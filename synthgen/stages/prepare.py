"""Stage `prepare`: source -> decode -> dedup -> train/val split -> shards plus reports.

Outputs in `out_dir` (named by `PreparedLayout`):
- `train/`, `val/`: shard datasets (synthgen.shards), one per split;
- `classes.json`: the class names in label order (a JSON list);
- `class_counts.json`: images per class per split (a DVC metric);
- `rejected.parquet`: one row per input that was not written (key, origin, reason, detail),
  exact duplicates included, with a fixed schema even when empty;
- `summary.json`: the counts, written last.

Everything is built in a hidden staging folder beside `out_dir`, then moved into place output by
output with `summary.json` last: a `summary.json` present means the outputs beside it are
complete and from one run. Other files in `out_dir` (the flow's `params.json`) are left alone.
"""
from __future__ import annotations

import hashlib
import logging
import shutil
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

import pyarrow as pa

from synthgen.atomic import TMP_MARK, atomic_write_json, sha256_bytes
from synthgen.config.data import DataConfig
from synthgen.data.catalog import open_source
from synthgen.data.decode import ImageRejected, decode_rgb
from synthgen.data.sources import DataSourceError, Rejection, SourceItem
from synthgen.imaging import encode_image
from synthgen.outputs import writes
from synthgen.shards import ShardSample, ShardWriter
from synthgen.shards.index import write_parquet
from synthgen.stages.layout import PreparedLayout

log = logging.getLogger(__name__)

SPLITS = PreparedLayout.SPLITS
REJECTED_SCHEMA = pa.schema([("key", pa.string()), ("origin", pa.string()), ("reason", pa.string()), ("detail", pa.string())])


@dataclass(frozen=True)
class PrepareSummary:
    """What one prepare run read, wrote and left out."""

    source: str
    seen: int  # items and rejections the source produced
    written: dict[str, int]  # samples per split
    duplicates: int  # exact pixel duplicates of an earlier image (listed in rejected.parquet)
    rejected: dict[str, int]  # rejections per reason, duplicates excluded
    excluded: int  # images of classes outside data.classes
    classes: list[str]
    class_counts: dict[str, dict[str, int]] = field(repr=False)  # split -> class name -> count

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def split_of(key: str, val_fraction: float) -> str:
    """'val' for a stable `val_fraction` share of keys: the key's sha256 read as a number in [0, 1)."""
    position = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64
    return "val" if position < val_fraction else "train"


def class_mapping(names: list[str], keep: tuple[str, ...] | None) -> tuple[list[str], dict[int, int]]:
    """The kept class names and a map from source label to new label (data.classes order)."""
    if keep is None:
        return list(names), {i: i for i in range(len(names))}
    unknown = [c for c in keep if c not in names]
    if unknown:
        raise DataSourceError(f"data.classes names {unknown} that the source does not have; it has {names}")
    return list(keep), {names.index(c): i for i, c in enumerate(keep)}


class Preparer:
    """Turns source entries into shard samples, remembering what it rejected and why."""

    def __init__(self, cfg: DataConfig, staging: Path, classes: list[str], relabel: dict[int, int], source_size: int):
        self.cfg, self.classes, self.relabel, self.source_size = cfg, classes, relabel, source_size
        self.writers = {s: ShardWriter(staging / s, prefix=s, max_count=cfg.images_per_shard,
                                       image_format=cfg.image_format) for s in SPLITS}
        self.first_key_of: dict[str, str] = {}  # pixel digest -> key that was written
        self.rejections: list[Rejection] = []
        self.counts = {s: Counter() for s in SPLITS}
        self.seen = self.excluded = 0

    def add(self, entry: SourceItem | Rejection) -> None:
        self.seen += 1
        if isinstance(entry, Rejection):
            self.rejections.append(entry)
            return
        if not 0 <= entry.label < self.source_size:
            self.reject(entry, "label_out_of_range", f"label {entry.label} is not in 0..{self.source_size - 1}")
        elif entry.label not in self.relabel:
            self.excluded += 1
        else:
            self.write(entry, self.relabel[entry.label])

    def reject(self, item: SourceItem, reason: str, detail: str) -> None:
        self.rejections.append(Rejection(item.key, item.origin, reason, detail))

    def write(self, item: SourceItem, label: int) -> None:
        cfg = self.cfg
        try:
            pixels = decode_rgb(item.payload, cfg.resolution, cfg.max_image_pixels, cfg.min_image_size)
        except ImageRejected as e:
            self.reject(item, e.reason, e.detail)
            return
        digest = sha256_bytes(pixels.tobytes())
        if digest in self.first_key_of:
            self.reject(item, "duplicate", f"same pixels as {self.first_key_of[digest]}")
            return
        self.first_key_of[digest] = item.key
        split = split_of(item.key, cfg.val_fraction)
        name = self.classes[label]
        self.writers[split].write(ShardSample(
            key=item.key, image=encode_image(pixels, cfg.image_format), label=label, class_name=name,
            width=cfg.resolution, height=cfg.resolution, format=cfg.image_format, meta={"origin": item.origin},
        ))
        self.counts[split][name] += 1

    def summary(self, source: str) -> PrepareSummary:
        reasons = Counter(r.reason for r in self.rejections)
        duplicates = reasons.pop("duplicate", 0)
        return PrepareSummary(
            source=source, seen=self.seen, written={s: sum(self.counts[s].values()) for s in SPLITS},
            duplicates=duplicates, rejected=dict(sorted(reasons.items())), excluded=self.excluded,
            classes=self.classes,
            class_counts={s: {c: self.counts[s][c] for c in self.classes} for s in SPLITS},
        )


def rejected_table(rejections: list[Rejection]) -> pa.Table:
    columns = {name: [getattr(r, name) for r in rejections] for name in REJECTED_SCHEMA.names}
    return pa.table(columns, schema=REJECTED_SCHEMA)


def fresh_folder(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def publish(staging: Path, out_dir: Path) -> None:
    """Move each output from `staging` into `out_dir`, replacing the previous run's; summary last."""
    out_dir.mkdir(parents=True, exist_ok=True)
    remove(out_dir / PreparedLayout.SUMMARY)  # from here until the new one lands, out_dir reads as incomplete
    for name in PreparedLayout.OUTPUTS:
        remove(out_dir / name)
        (staging / name).rename(out_dir / name)
    staging.rmdir()


def empty_result_message(summary: PrepareSummary, rejections: list[Rejection]) -> str:
    reasons = ", ".join(f"{reason} {n}" for reason, n in summary.rejected.items()) or "none"
    first = f"; first: {rejections[0].origin}: {rejections[0].reason} {rejections[0].detail}" if rejections else ""
    return (f"no images left to write from source {summary.source!r}: {summary.seen} seen, rejected: {reasons}, "
            f"duplicates {summary.duplicates}, excluded by data.classes {summary.excluded}{first}")


def prepare_dataset(cfg: DataConfig, out_dir: Path, *, run_config: Mapping[str, Any] | None = None) -> PrepareSummary:
    """Read `cfg.source`, write deduplicated train/val shards and reports to `out_dir`.

    `run_config` (default: the data section) is stored in each split's manifest. Bad inputs are
    rejected with a reason and never stop the run; a run that writes nothing raises DataSourceError.
    """
    out_dir = Path(out_dir).resolve()  # "." has no name to derive the staging folder from
    # 1) open the source: a missing dataset fails here, before anything is written
    source = open_source(cfg)
    classes, relabel = class_mapping(source.class_names, cfg.classes)
    staging = fresh_folder(out_dir.parent / f".{out_dir.name}{TMP_MARK}staging")
    try:
        # 2) decode, deduplicate, split and write every entry
        preparer = Preparer(cfg, staging, classes, relabel, len(source.class_names))
        for entry in source:
            preparer.add(entry)
        summary = preparer.summary(source.name)
        if sum(summary.written.values()) == 0:
            raise DataSourceError(empty_result_message(summary, preparer.rejections))
        # 3) finish the shard datasets, then the reports; summary.json last
        config = dict(run_config) if run_config is not None else {"data": cfg.model_dump(mode="json")}
        for writer in preparer.writers.values():
            writer.finish_dataset(config=config)
        atomic_write_json(staging / PreparedLayout.CLASSES, classes)
        atomic_write_json(staging / PreparedLayout.CLASS_COUNTS, summary.class_counts)
        write_parquet(staging / PreparedLayout.REJECTED, rejected_table(preparer.rejections))
        atomic_write_json(staging / PreparedLayout.SUMMARY, summary.as_dict())
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    # 4) move the complete result into place
    publish(staging, out_dir)
    if cfg.val_fraction > 0 and summary.written["val"] == 0:
        log.warning("val split is empty: %d images are too few for data.val_fraction=%s", summary.written["train"], cfg.val_fraction)
    log.info("prepared %s: %s", out_dir, {k: v for k, v in summary.as_dict().items() if k != "class_counts"})
    return summary


@dataclass(frozen=True)
class Inputs:
    """prepare reads no stage folder: its source is named by `data.source` (and `data.path`)."""


@writes("prepare")
def run(cfg: DataConfig, inputs: Inputs, out: Path) -> dict[str, Any]:
    """The stage: `prepare_dataset` into `out`; returns the summary as a dict."""
    return prepare_dataset(cfg, out).as_dict()
