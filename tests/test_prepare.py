"""prepare_dataset end to end: counts, reports, dedup, deterministic split, bad inputs, class subsets."""
from __future__ import annotations

import io
import json
import math
import tarfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from synthgen.config.data import DataConfig
from synthgen.data.shapes import CLASS_NAMES, render_shapes
from synthgen.data.sources import DataSourceError
from synthgen.shards import read_arrays, read_manifest
from synthgen.stages.prepare import REJECTED_SCHEMA, prepare_dataset, split_of


def shapes_config(**overrides) -> DataConfig:
    return DataConfig(**{"num_images": 40, "resolution": 16, "images_per_shard": 8, "val_fraction": 0.25, **overrides})


def read_json(path: Path):
    return json.loads(path.read_text())


def encode(im: Image.Image, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **options)
    return buf.getvalue()


def noise(seed: int, size=(20, 20)) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def exif_rotated_jpeg(seed: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(noise(seed, (24, 20)), "JPEG", exif=exif.tobytes())


GOOD_FILES = {  # one file per format or mode the decoder must handle
    "a/plain.png": lambda: encode(noise(1), "PNG"),
    "a/photo.jpg": lambda: encode(noise(2), "JPEG"),
    "a/anim.gif": lambda: encode(noise(3).convert("P"), "GIF"),
    "a/scan.tiff": lambda: encode(noise(4), "TIFF"),
    "a/palette.png": lambda: encode(noise(5).convert("P", palette=Image.Palette.ADAPTIVE, colors=16), "PNG"),
    "b/deep.png": lambda: encode(Image.fromarray(np.arange(400, dtype=np.uint16).reshape(20, 20) * 160), "PNG"),
    "b/print.jpg": lambda: encode(noise(6).convert("CMYK"), "JPEG"),
    "b/cutout.png": lambda: encode(noise(7).convert("RGBA"), "PNG"),
    "b/rotated.jpg": lambda: exif_rotated_jpeg(8),
}
BAD_FILES = {  # file -> the reason prepare must record
    "a/half.png": (lambda: encode(noise(9), "PNG")[:600], "truncated"),
    "a/empty.png": (lambda: b"", "empty"),
    "b/notes.txt": (lambda: b"not an image\n", "not_an_image"),
    "b/bomb.png": (lambda: encode(noise(10, (40, 40)), "PNG"), "too_many_pixels"),
    "b/tiny.png": (lambda: encode(noise(11, (4, 4)), "PNG"), "too_small"),
    "b/copy.bmp": (lambda: encode(noise(1), "BMP"), "duplicate"),  # the same pixels as a/plain.png
}
LIMITS = {"max_image_pixels": 1000, "min_image_size": 8}  # 20x20 images pass, 40x40 and 4x4 do not


def write_files(root: Path, files: dict) -> None:
    for name, make in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(make())


def test_shapes_end_to_end(tmp_path):
    out = tmp_path / "prepared"
    summary = prepare_dataset(shapes_config(), out)
    train, val = read_arrays(out / "train"), read_arrays(out / "val")
    # 1) counts agree everywhere
    assert summary.seen == 40 and summary.written["train"] + summary.written["val"] == 40
    assert (len(train[2]), len(val[2])) == (summary.written["train"], summary.written["val"]) and len(val[2]) > 0
    assert read_json(out / "summary.json") == summary.as_dict()
    assert read_json(out / "classes.json") == CLASS_NAMES
    counts = read_json(out / "class_counts.json")
    assert [counts["train"][name] for name in CLASS_NAMES] == np.bincount(train[1], minlength=12).tolist()
    assert read_manifest(out / "train")["num_shards"] == math.ceil(len(train[2]) / 8)
    # 2) rejected.parquet exists with its fixed schema even when nothing was rejected
    assert pq.read_table(out / "rejected.parquet").schema.equals(REJECTED_SCHEMA) and summary.rejected == {}
    # 3) pixels round-trip losslessly and each key sits in the split its hash names
    pixels, labels, _ = render_shapes(40, 16, seed=0)
    for split, (got, got_labels, keys) in (("train", train), ("val", val)):
        index = [int(k.split("-")[1]) for k in keys]
        assert np.array_equal(got, pixels[index]) and np.array_equal(got_labels, labels[index])
        assert all(split_of(k, 0.25) == split for k in keys)


def test_prepare_is_deterministic_and_rerun_leaves_no_stale_shards(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    prepare_dataset(shapes_config(), a)
    prepare_dataset(shapes_config(), b)
    for name in ("train", "val"):
        assert read_manifest(a / name)["shards"] == read_manifest(b / name)["shards"]
    assert (a / "rejected.parquet").read_bytes() == (b / "rejected.parquet").read_bytes()
    prepare_dataset(shapes_config(num_images=12), a)
    assert sorted(p.name for p in (a / "train").glob("*.tar")) == [s["name"] for s in read_manifest(a / "train")["shards"]]
    assert not list(tmp_path.glob(".*"))  # no staging folders left behind


def test_split_is_stable_and_close_to_the_fraction():
    keys = [f"k{i}" for i in range(4000)]
    at_20 = {k for k in keys if split_of(k, 0.2) == "val"}
    at_30 = {k for k in keys if split_of(k, 0.3) == "val"}
    assert abs(len(at_20) / 4000 - 0.2) < 0.03 and at_20 <= at_30  # raising the fraction only adds keys
    assert all(split_of(k, 0.0) == "train" for k in keys[:100])


def test_bad_inputs_are_recorded_with_their_reason_and_never_abort(tmp_path):
    root = tmp_path / "images"
    write_files(root, GOOD_FILES)
    write_files(root, {name: make for name, (make, _) in BAD_FILES.items()})
    out = tmp_path / "prepared"
    summary = prepare_dataset(DataConfig(source="imagefolder", path=str(root), resolution=16, **LIMITS), out)
    rows = pq.read_table(out / "rejected.parquet").to_pylist()
    by_file = {str(Path(r["origin"]).relative_to(root)): r["reason"] for r in rows}
    assert by_file == {name: reason for name, (_, reason) in BAD_FILES.items()}
    assert next(r["detail"] for r in rows if r["reason"] == "duplicate") == "same pixels as a_plain_png"
    assert summary.duplicates == 1
    assert summary.rejected == {"empty": 1, "not_an_image": 1, "too_many_pixels": 1, "too_small": 1, "truncated": 1}
    assert sum(summary.written.values()) == len(GOOD_FILES)
    assert summary.seen == len(GOOD_FILES) + len(BAD_FILES)
    assert read_json(out / "classes.json") == ["a", "b"]


def test_empty_result_is_a_clear_error_and_writes_nothing(tmp_path):
    root = tmp_path / "images"
    write_files(root, {"a/notes.txt": lambda: b"hello", "a/empty.png": lambda: b""})
    out = tmp_path / "prepared"
    with pytest.raises(DataSourceError, match="no images left to write.*2 seen.*empty 1, not_an_image 1"):
        prepare_dataset(DataConfig(source="imagefolder", path=str(root)), out)
    assert not out.exists() and not list(tmp_path.glob(".*"))


def test_rerun_replaces_only_its_own_outputs(tmp_path):
    (tmp_path / "params.json").write_text("{}")  # written by the flow, not by prepare
    prepare_dataset(shapes_config(), tmp_path)
    (tmp_path / "val" / "stale.tar").write_bytes(b"left over")
    prepare_dataset(shapes_config(num_images=12), tmp_path)
    assert (tmp_path / "params.json").read_text() == "{}"
    assert not (tmp_path / "val" / "stale.tar").exists()
    assert read_json(tmp_path / "summary.json")["seen"] == 12


def test_class_subset_relabels_in_the_given_order(tmp_path):
    keep = ("blue_square", "red_circle")
    summary = prepare_dataset(shapes_config(num_images=48, classes=keep), tmp_path / "out")
    _, labels, _ = read_arrays(tmp_path / "out" / "train")
    assert summary.classes == list(keep) and set(labels.tolist()) <= {0, 1}
    assert sum(summary.written.values()) == 8 and summary.excluded == 40
    with pytest.raises(DataSourceError, match="does not have"):
        prepare_dataset(shapes_config(classes=("purple_star",)), tmp_path / "other")


def test_webdataset_round_trip_and_label_out_of_range(tmp_path):
    first = tmp_path / "first"
    prepare_dataset(shapes_config(num_images=24), first)
    extra = tmp_path / "extra.tar"
    with tarfile.open(extra, "w") as tar:
        for name, data in (("odd.png", encode(noise(0), "PNG")), ("odd.cls", b"99")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    (first / "train" / "zz-extra.tar").write_bytes(extra.read_bytes())
    second = tmp_path / "second"
    summary = prepare_dataset(DataConfig(source="webdataset", path=str(first / "train"), resolution=16, val_fraction=0.0), second)
    assert summary.classes == CLASS_NAMES  # read from first/classes.json
    assert summary.rejected == {"label_out_of_range": 1}
    before, after = read_arrays(first / "train"), read_arrays(second / "train")
    assert after[2] == before[2] and np.array_equal(after[0], before[0]) and np.array_equal(after[1], before[1])
