"""Existing WebDataset shards: tar files whose members `<key>.<ext>` group into samples.

Following the WebDataset convention, a member's key is its path up to the first dot of its
base name, and the rest is the field (`png`, `cls`, ...). The image is the first field with an
image extension (IMAGE_EXTENSIONS order); the label is the field `data.label_field`, holding a
non-negative integer or a class name (as text, or as JSON when the field is `json`), one kind for the
whole dataset (`synthgen.data.labels` refuses anything else, naming the sample). Class names come
from a `classes.json` (a JSON list) beside the shards or in their parent folder; without one, a
first pass over the labels collects them (integers 0..max are named "0".."max", names are sorted).
Tars are streamed and never extracted to disk.
"""
from __future__ import annotations

import glob
import json
import re
import tarfile
import zlib
from pathlib import Path
from typing import Iterator

from pydantic import Field

from synthgen.data.labels import LabelReader, check_class_count
from synthgen.data.sources import (
    DataSourceError, LocalFiles, Rejection, Source, SourceItem, SourceSpec, is_glob, key_from_path,
)

IMAGE_EXTENSIONS = ("png", "jpg", "jpeg", "webp", "bmp", "gif", "tif", "tiff", "ppm", "pgm", "pnm", "tga")
SHARD_SUFFIXES = (".tar", ".tar.gz", ".tgz")
CLASSES_FILE = "classes.json"
_MEMBER = re.compile(r"^((?:.*/|)[^./]+)\.([^/]+)$")  # WebDataset's key/extension split

Sample = tuple[str, dict[str, bytes]]


class ShardReadError(Exception):
    """A shard stopped being readable part way; samples read before it stand."""


class WebdatasetOptions(LocalFiles):
    layout = "a folder of .tar shards, one .tar file, or a glob such as 'shards/*.tar'"

    label_field: str = Field("cls", pattern=r"^[A-Za-z0-9_.-]+$")  # webdataset member extension that holds the label (an integer or a class name)


def shard_files(path: str) -> list[Path]:
    """The shards `path` names: a glob, a folder (its .tar/.tar.gz/.tgz files) or one tar file."""
    if is_glob(path):
        files = [Path(p) for p in sorted(glob.glob(path)) if Path(p).is_file()]
    elif Path(path).is_dir():
        files = sorted(p for p in Path(path).iterdir() if p.is_file() and p.name.endswith(SHARD_SUFFIXES))
    else:
        files = [Path(path)] if Path(path).is_file() else []
    if not files:
        raise DataSourceError(f"no shards found at data.path {path!r}: point it at {WebdatasetOptions.layout}")
    return files


def iter_samples(shard: Path, fields: set[str] | None = None) -> Iterator[Sample]:
    """(key, {field: bytes}) for consecutive members sharing a key; only `fields` are read if given."""
    key: str | None = None
    sample: dict[str, bytes] = {}
    try:
        with tarfile.open(shard, "r|*") as tar:
            for member in tar:
                match = _MEMBER.match(member.name)
                if not member.isfile() or not match:
                    continue
                member_key, field = match.group(1), match.group(2).lower()
                if member_key != key and key is not None:
                    yield key, sample
                    sample = {}
                key = member_key
                if fields is None or field in fields:
                    sample[field] = tar.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        where = f" in or after sample {key!r}" if key is not None else ""
        raise ShardReadError(f"{type(e).__name__}: {e}{where}") from None
    if key is not None:
        yield key, sample


def find_image(sample: dict[str, bytes]) -> bytes | None:
    return next((sample[ext] for ext in IMAGE_EXTENSIONS if ext in sample), None)


def read_classes_file(shards: list[Path], max_classes: int) -> list[str] | None:
    """Class names from classes.json beside the first shard or in its parent folder."""
    folder = shards[0].parent
    for candidate in (folder / CLASSES_FILE, folder.parent / CLASSES_FILE):
        if candidate.is_file():
            try:
                names = json.loads(candidate.read_text())
            except (OSError, ValueError) as e:
                raise DataSourceError(f"{candidate} is not valid JSON: {e}") from None
            if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
                raise DataSourceError(f"{candidate} must be a JSON list of class names")
            if len(set(names)) != len(names):
                raise DataSourceError(f"{candidate} names a class more than once")
            check_class_count(len(names), max_classes, str(candidate))
            return names
    return None


def scan_class_names(shards: list[Path], options: WebdatasetOptions) -> list[str]:
    """Collect the labels in a first pass: integers give "0".."max", names are sorted."""
    field = options.label_field.lower()
    labels = LabelReader(field, options.max_classes)
    values: set[int | str] = set()
    for shard in shards:
        try:
            for key, sample in iter_samples(shard, {field}):
                if field in sample:
                    values.add(labels.read(sample[field], f"{shard}:{key}"))
                    check_class_count(len(values), options.max_classes, f"{shard}:{key}")
        except ShardReadError:
            continue  # reported as a rejection when the items are read
    if not values:
        raise DataSourceError(f"no '{field}' labels in the shards: set data.label_field to the member extension holding labels")
    if all(isinstance(v, int) for v in values):
        return [str(i) for i in range(max(values) + 1)]
    return sorted(values)


def label_index(value: int | str, names: list[str]) -> int | None:
    """An integer label as is (prepare rejects one beyond the classes); a class name as its index, None if unknown."""
    if isinstance(value, int):
        return value
    return names.index(value) if value in names else None


def sample_to_item(key: str, origin: str, sample: dict[str, bytes], names: list[str],
                   labels: LabelReader) -> SourceItem | Rejection:
    image = find_image(sample)
    if image is None:
        return Rejection(key, origin, "no_image", f"no member with an image extension ({', '.join(sorted(sample)) or 'none'})")
    if labels.field not in sample:
        return Rejection(key, origin, "no_label", f"no '{labels.field}' member (set data.label_field)")
    value = labels.read(sample[labels.field], origin)
    label = label_index(value, names)
    if label is None:
        return Rejection(key, origin, "unknown_class", f"label {value!r} is not one of the {len(names)} classes in classes.json")
    return SourceItem(key, image, label, origin)


def webdataset_source(options: WebdatasetOptions, resolution: int) -> Source:
    """Items from every sample of every shard at `data.path`, in sorted shard order."""
    shards = shard_files(options.path)
    names = read_classes_file(shards, options.max_classes) or scan_class_names(shards, options)

    def items() -> Iterator[SourceItem | Rejection]:
        used: set[str] = set()
        labels = LabelReader(options.label_field.lower(), options.max_classes)
        for shard in shards:
            try:
                for sample_key, sample in iter_samples(shard):
                    key = key_from_path(sample_key, used)
                    yield sample_to_item(key, f"{shard}:{sample_key}", sample, names, labels)
            except ShardReadError as e:
                yield Rejection(key_from_path(shard.name, used), str(shard), "unreadable_shard", str(e))

    return Source("webdataset", names, items)


SOURCE = SourceSpec("webdataset", WebdatasetOptions, webdataset_source)
