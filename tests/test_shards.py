"""The shard store: determinism, atomicity, round trips, the Parquet schema and the reader."""
import hashlib
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
import torch
import webdataset as wds

from synthgen.atomic import remove_leftovers, sha256_file
from synthgen.imaging import encode_image
from synthgen.shards import (
    ShardSample, ShardWriter, check_key, load_metadata, open_dataset, read_arrays, read_manifest,
    sanitize_key, verify_dataset, write_shard,
)
from synthgen.shards import tar as shard_tar
from synthgen.shards.schema import COLUMNS

GENERATION_COLUMNS = [c.name for c in COLUMNS if c.group == "generation"]  # a `seed` brings its whole group

REPO = str(Path(__file__).resolve().parents[1])


def make_samples(n, seed=0, size=8):
    rng = np.random.default_rng(seed)
    for i in range(n):
        pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        yield ShardSample(f"img-{i:04d}", encode_image(pixels), i % 3, f"class{i % 3}", size, size, "png",
                          {"seed": 1000 + i})


def write_dataset(folder, n=10, max_count=4):
    with ShardWriter(folder, "train", max_count=max_count) as w:
        for s in make_samples(n):
            w.write(s)
        return w.finish_dataset(config={"source": "test"})


def test_same_samples_give_byte_identical_files(tmp_path):
    a = write_dataset(tmp_path / "a")
    b = write_dataset(tmp_path / "b")
    assert [s["sha256"] for s in a["shards"]] == [s["sha256"] for s in b["shards"]]
    for name in ["train-000000.tar", "__index__/train-000000.parquet", "metadata.parquet", "shards.json", "manifest.json"]:
        assert sha256_file(tmp_path / "a" / name) == sha256_file(tmp_path / "b" / name), name


def test_manifest_lists_shards_with_counts_and_checksums(tmp_path):
    manifest = write_dataset(tmp_path, n=10, max_count=4)
    assert manifest["num_samples"] == 10
    assert [s["count"] for s in manifest["shards"]] == [4, 4, 2]
    for entry in manifest["shards"]:
        path = tmp_path / entry["name"]
        assert entry["sha256"] == sha256_file(path) and entry["bytes"] == path.stat().st_size
    assert read_manifest(tmp_path) == manifest
    assert verify_dataset(tmp_path) == []


def test_tampered_shard_fails_verification(tmp_path):
    write_dataset(tmp_path)
    with open(tmp_path / "train-000001.tar", "r+b") as f:
        f.seek(600)
        f.write(b"X")
    assert verify_dataset(tmp_path) == ["train-000001.tar"]


def test_error_mid_shard_leaves_no_complete_looking_file(tmp_path, monkeypatch):
    calls = {"n": 0}
    real_add = shard_tar.add_member

    def failing_add(tar, name, data):
        calls["n"] += 1
        if calls["n"] == 5:
            raise OSError("No space left on device")
        real_add(tar, name, data)

    monkeypatch.setattr("synthgen.shards.writer.add_member", failing_add)
    with pytest.raises(OSError):
        write_shard(tmp_path / "train-000000.tar", make_samples(4))
    assert list(tmp_path.iterdir()) == []


def test_killed_writer_leaves_only_temporary_files(tmp_path):
    script = f"""
import os
from tests.test_shards import make_samples
from synthgen.shards import write_shard
def dying():
    for i, s in enumerate(make_samples(6)):
        if i == 3:
            os._exit(9)
        yield s
write_shard({str(tmp_path / 'train-000000.tar')!r}, dying())
"""
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO)
    assert proc.returncode == 9
    names = [p.name for p in tmp_path.iterdir()]
    assert not any(n.endswith((".tar", ".parquet")) for n in names), names
    assert names and len(remove_leftovers(tmp_path)) == len(names)
    assert list(tmp_path.iterdir()) == []


def test_round_trip_through_webdataset_and_tarfile(tmp_path):
    write_dataset(tmp_path, n=5, max_count=10)
    shard = tmp_path / "train-000000.tar"
    originals = {s.key: s for s in make_samples(5)}

    for sample in wds.WebDataset(str(shard), shardshuffle=False, empty_check=False):
        original = originals[sample["__key__"]]
        assert sample["png"] == original.image
        assert int(sample["cls"]) == original.label
        assert json.loads(sample["json"])["seed"] == original.meta["seed"]

    with tarfile.open(shard) as tar:
        members = tar.getmembers()
        assert [m.name for m in members[:3]] == ["img-0000.png", "img-0000.cls", "img-0000.json"]
        assert {m.mtime for m in members} == {shard_tar.FIXED_MTIME} and {m.uid for m in members} == {0}
        assert tar.extractfile("img-0003.png").read() == originals["img-0003"].image


def test_parquet_schema_and_rows(tmp_path):
    write_dataset(tmp_path, n=10)
    schema = pq.read_schema(tmp_path / "metadata.parquet")
    assert schema.names == ["key", "shard", "index", "label", "class_name", "sha256", "width", "height",
                            "format", *GENERATION_COLUMNS]
    frame = load_metadata(tmp_path).collect()
    assert frame.height == 10 and frame["key"].n_unique() == 10
    row = frame.filter(pl.col("key") == "img-0005").row(0, named=True)
    assert row["shard"] == "train-000001.tar" and row["index"] == 1 and row["label"] == 2
    assert row["sha256"] == hashlib.sha256(list(make_samples(6))[5].image).hexdigest()
    shard_index = pq.read_table(tmp_path / "__index__" / "train-000002.parquet")
    assert shard_index.num_rows == 2


def test_keys_are_sanitised_and_unsafe_keys_refused(tmp_path):
    assert sanitize_key("../../etc/passwd") == "etc_passwd"
    assert sanitize_key("cats/tabby 01.JPG") == "cats_tabby_01_JPG"
    assert len(sanitize_key("x" * 500)) <= 80
    for bad in ["../x", "a.b", "", "a/b", "x" * 81]:
        with pytest.raises(ValueError):
            check_key(bad)
    sample = next(make_samples(1))
    with pytest.raises(ValueError):
        write_shard(tmp_path / "t-000000.tar", [ShardSample("../evil", sample.image, 0, "c", 8, 8, "png")])


def test_duplicate_keys_are_refused(tmp_path):
    sample = next(make_samples(1))
    with ShardWriter(tmp_path, "t") as w:
        w.write(sample)
        with pytest.raises(ValueError, match="duplicate"):
            w.write(sample)


def test_open_dataset_filters_and_opens_only_matching_shards(tmp_path):
    write_dataset(tmp_path, n=10, max_count=4)
    ds = open_dataset(tmp_path, where=pl.col("seed") >= 1008)
    assert ds.shards == ["train-000002.tar"]
    samples = list(ds)
    assert [s["key"] for s in samples] == ["img-0008", "img-0009"]
    assert samples[0]["image"].shape == (3, 8, 8) and samples[0]["image"].dtype == torch.uint8
    assert samples[0]["meta"]["class_name"] == "class2"


def test_dataloader_workers_see_each_sample_once(tmp_path):
    write_dataset(tmp_path, n=10, max_count=2)
    ds = open_dataset(tmp_path, batch_size=3)
    # spawn: the session's Prefect test server runs threads, and forking a threaded process is unsafe
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2, multiprocessing_context="spawn")
    keys = [k for batch in loader for k in batch["key"]]
    assert sorted(keys) == [f"img-{i:04d}" for i in range(10)]
    shuffled = [s["key"] for s in open_dataset(tmp_path, shuffle=True, seed=3)]
    assert sorted(shuffled) == sorted(keys) and shuffled != sorted(keys)


def test_read_arrays_returns_pixels_in_manifest_order(tmp_path):
    write_dataset(tmp_path, n=6)
    pixels, labels, keys = read_arrays(tmp_path)
    assert pixels.shape == (6, 8, 8, 3) and pixels.dtype == np.uint8
    assert labels.tolist() == [0, 1, 2, 0, 1, 2] and keys[0] == "img-0000"
