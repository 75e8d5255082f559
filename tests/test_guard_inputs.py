"""Hostile and careless inputs (issue 15, cases 1, 6, 8, 9): labels are checked, params are bounded,
imagefolder stays inside its root. Each is refused with one line naming the key and the value."""
from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from synthgen.config import ConfigError, load_params
from synthgen.config.data import DataConfig
from synthgen.config.loader import MAX_PARAMS_BYTES
from synthgen.data.catalog import open_source
from synthgen.data.mnist import LABELS_MAGIC
from synthgen.data.sources import DataSourceError, Rejection, SourceItem
from tests.test_sources import idx_bytes, png, write_cifar, write_mnist, write_tar

REPO = Path(__file__).resolve().parents[1]


def one_line(message: str) -> str:
    assert "\n" not in message and len(message) < 600, message
    return message


def labelled_shard(path: Path, labels: list[bytes], field: str = "cls") -> Path:
    """One shard of tiny PNGs, sample i labelled labels[i] in the member `<key>.<field>`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    members = []
    for i, label in enumerate(labels):
        members += [(f"s{i:02d}.png", png((20 * i % 256, 0, 0), size=(8, 8))), (f"s{i:02d}.{field}", label)]
    write_tar(path, members)
    return path


def webdataset(path: Path, **options) -> DataConfig:
    return DataConfig(source="webdataset", path=str(path), **options)


def read_all(cfg: DataConfig) -> list[SourceItem | Rejection]:
    return list(open_source(cfg))


# --- case 1: one odd label among integers is refused, not misnamed ---------------------------------

def test_a_float_label_among_integers_is_refused_naming_the_sample(tmp_path):
    labels = [str(i % 12).encode() for i in range(24)]
    labels[7] = b"3.0"
    labelled_shard(tmp_path / "shard-000000.tar", labels)
    with pytest.raises(DataSourceError) as refused:
        read_all(webdataset(tmp_path))
    message = one_line(str(refused.value))
    assert "shard-000000.tar:s07" in message and "'3.0'" in message and "integers 0..K-1 or class names" in message


@pytest.mark.parametrize("bad,field,what", [
    (b"-1", "cls", "not a non-negative integer"),
    (b"+2", "cls", "not a non-negative integer"),
    (b"1e3", "cls", "not a non-negative integer"),
    (b"\xff\xfe", "cls", "not UTF-8"),
    (b"", "cls", "empty"),
    (b"x" * 300, "cls", "longer than 256"),
    (b'{"label": 0}', "json", "a JSON object"),
    (b"[0]", "json", "a JSON list"),
    (b"true", "json", "a bool"),
    (b"2.5", "json", "a float"),
    (b"3.0", "json", "a float"),
    (b"null", "json", "null"),
    (b"-4", "json", "a negative integer"),
    (b"{", "json", "not valid JSON"),
])
def test_labels_that_are_not_integers_or_names_are_refused(tmp_path, bad, field, what):
    labelled_shard(tmp_path / "a.tar", [b"1", bad, b"1"], field=field)
    with pytest.raises(DataSourceError, match=what) as refused:
        read_all(webdataset(tmp_path, label_field=field))
    assert "a.tar:s01" in one_line(str(refused.value))


def test_a_mix_of_integers_and_names_is_refused_naming_both(tmp_path):
    labelled_shard(tmp_path / "a.tar", [b"0", b"1", b"cat", b"2"])
    with pytest.raises(DataSourceError, match="not a mix") as refused:
        read_all(webdataset(tmp_path))
    message = one_line(str(refused.value))
    assert "a.tar:s02" in message and "'cat'" in message and "a.tar:s00" in message


def test_a_mix_is_refused_with_a_classes_file_too(tmp_path):
    (tmp_path / "classes.json").write_text(json.dumps(["cat", "dog"]))
    labelled_shard(tmp_path / "a.tar", [b"dog", b"1"])
    source = open_source(webdataset(tmp_path))
    with pytest.raises(DataSourceError, match="a.tar:s01.*not a mix"):
        list(source)


def test_json_labels_are_integers_or_names(tmp_path):
    labelled_shard(tmp_path / "ints" / "a.tar", [b"2", b"0", b"1"], field="json")
    assert [e.label for e in read_all(webdataset(tmp_path / "ints", label_field="json"))] == [2, 0, 1]
    labelled_shard(tmp_path / "names" / "a.tar", [b'"dog"', b'"cat"', b'"7"'], field="json")
    source = open_source(webdataset(tmp_path / "names", label_field="json"))
    assert source.class_names == ["7", "cat", "dog"] and [e.label for e in source] == [2, 1, 0]


def test_a_classes_file_naming_a_class_twice_is_refused(tmp_path):
    (tmp_path / "classes.json").write_text(json.dumps(["cat", "cat"]))
    labelled_shard(tmp_path / "a.tar", [b"0"])
    with pytest.raises(DataSourceError, match="more than once"):
        read_all(webdataset(tmp_path))


# --- case 6: one huge label allocates nothing ------------------------------------------------------

def test_a_huge_label_is_refused_before_any_class_name_is_built(tmp_path):
    labelled_shard(tmp_path / "a.tar", [b"0", b"300000000", b"1"])
    tracemalloc.start()
    try:
        with pytest.raises(DataSourceError, match=r"a.tar:s01: label 300000000 is at or above data.max_classes = 100000"):
            read_all(webdataset(tmp_path))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20  # 3e8 class names would take gigabytes


def test_max_classes_bounds_labels_and_class_names(tmp_path):
    labelled_shard(tmp_path / "ints" / "a.tar", [b"0", b"7"])
    with pytest.raises(DataSourceError, match="data.max_classes = 5"):
        read_all(webdataset(tmp_path / "ints", max_classes=5))
    labelled_shard(tmp_path / "names" / "a.tar", [f"c{i}".encode() for i in range(6)])
    with pytest.raises(DataSourceError, match="6 classes, more than data.max_classes = 5"):
        read_all(webdataset(tmp_path / "names", max_classes=5))
    for name in "abcdef":
        (tmp_path / "folder" / name).mkdir(parents=True)
    with pytest.raises(DataSourceError, match="6 classes"):
        open_source(DataConfig(source="imagefolder", path=str(tmp_path / "folder"), max_classes=5))


def test_cifar_and_mnist_labels_are_checked(tmp_path):
    write_cifar(tmp_path / "cifar")
    batch = pickle.loads((tmp_path / "cifar" / "data_batch_2").read_bytes())
    batch[b"labels"][1] = 3.0
    (tmp_path / "cifar" / "data_batch_2").write_bytes(pickle.dumps(batch, protocol=4))
    with pytest.raises(DataSourceError, match=r"data_batch_2: labels\[1\]: label 3.0 is not an integer in 0..9"):
        open_source(DataConfig(source="cifar10", path=str(tmp_path / "cifar")))
    write_mnist(tmp_path / "mnist", compress=False)
    (tmp_path / "mnist" / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.array([0, 1, 2, 200, 4, 5]), LABELS_MAGIC))
    with pytest.raises(DataSourceError, match=r"train-labels-idx1-ubyte\[3\]: label 200 is not an integer in 0..9"):
        open_source(DataConfig(source="mnist", path=str(tmp_path / "mnist")))


# --- case 8: imagefolder stays inside its root -----------------------------------------------------

def test_imagefolder_rejects_links_out_of_its_root_and_follows_links_inside(tmp_path):
    outside, root = tmp_path / "elsewhere", tmp_path / "data"
    (outside / "secrets").mkdir(parents=True)
    (outside / "secrets" / "x.png").write_bytes(png())
    (outside / "y.png").write_bytes(png())
    (root / "cats").mkdir(parents=True)
    (root / "dogs").mkdir()
    (root / "cats" / "a.png").write_bytes(png())
    (root / "dogs" / "b.png").write_bytes(png())
    (root / "everything").symlink_to("/")  # a class folder linked out of the root
    (root / "cats" / "stolen.png").symlink_to(outside / "y.png")
    (root / "cats" / "more").symlink_to(outside / "secrets")
    (root / "cats" / "also_dogs").symlink_to(root / "dogs")  # inside the root: followed
    (root / "dogs" / "loop").symlink_to(root / "dogs")  # a loop: walked once
    source = open_source(DataConfig(source="imagefolder", path=str(root)))
    got = list(source)
    assert source.class_names == ["cats", "dogs"]
    items = {Path(e.origin).relative_to(root).as_posix(): e.label for e in got if isinstance(e, SourceItem)}
    assert items == {"cats/a.png": 0, "cats/also_dogs/b.png": 0, "dogs/b.png": 1}
    rejected = {Path(e.origin).relative_to(root).as_posix(): e for e in got if isinstance(e, Rejection)}
    assert set(rejected) == {"everything", "cats/stolen.png", "cats/more"}
    assert {e.reason for e in rejected.values()} == {"outside_root"}
    assert "outside data.path" in rejected["cats/stolen.png"].detail


# --- cases 6 and 9: params are bounded, typed and checked across keys before any work ---------------

def params_error(tmp_path: Path, text: str | bytes, *overrides: str) -> str:
    path = tmp_path / "params.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ConfigError) as refused:
        load_params(path, overrides)
    return one_line(str(refused.value))


ALIAS_BOMB = "\n".join(["data:", '  a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
                       + [f"  {n}: &{n} [{', '.join([f'*{p}'] * 9)}]" for p, n in zip("abcdefgh", "bcdefghi")]
                       + ["  classes: [*i, *i, *i, *i, *i, *i, *i, *i, *i]", ""])


@pytest.mark.parametrize("text,expected", [
    (ALIAS_BOMB, "line 2: YAML anchors and aliases (&name, *name) are not allowed"),
    ("data: &d {resolution: 32}\n", "line 1: YAML anchors and aliases"),
    ("", "empty: write the sections to set"),
    ("# only a comment\n", "empty: write the sections to set"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", "not UTF-8 text (byte 0)"),
    ("data: " + "[" * 50_000 + "]" * 50_000 + "\n", "line 1: nested more than 32 levels deep"),
    ("- data\n", "the top level must be a mapping of sections"),
    ("data:\n  resolution: 33\n",
     "data.resolution = 33 must be divisible by autoencoder.model.downsample = 2; try 32 or 34"),
    ("data:\n  resolution: 36\nautoencoder:\n  model: {downsample: 8, channel_mult: [1, 1, 1, 1]}\n",
     "data.resolution = 36 must be divisible by autoencoder.model.downsample = 8"),
    (f"sample:\n  seed: {2**64}\n", f"sample.seed = {2**64}: Input should be less than {2**63}"),
    (f"sample:\n  seed: {2**63}\n", "sample.seed"),
    (f"data:\n  seed: {2**63}\n", "data.seed"),
    (f"evaluate:\n  seed: {2**63}\n", "evaluate.seed"),
    (f"diffusion:\n  train: {{seed: {2**63}}}\n", "diffusion.train.seed"),
    ("sample:\n  seed: -1\n", "sample.seed = -1: Input should be greater than or equal to 0"),
    ("data:\n  path: '" + "x" * 5000 + "'\n", "data.path = 'xxxxx"),
    ("data:\n  classes: ['" + "c" * 300 + "']\n", "data.classes.0"),
    ("sample:\n  ray_address: '" + "h" * 5000 + "'\n", "String should have at most 4096 characters"),
    ("data:\n  max_classes: 100001\n", "data.max_classes = 100001: Input should be less than or equal to 100000"),
])
def test_bad_params_files_are_one_line(tmp_path, text, expected):
    assert expected in params_error(tmp_path, text)


def test_a_long_value_is_shown_cut_short(tmp_path):
    message = params_error(tmp_path, "data:\n  path: '" + "x" * 5000 + "'\n")
    assert "(5002 characters)" in message and len(message) < 400


def test_params_over_the_size_limit_are_refused_before_parsing(tmp_path):
    text = "data:\n  path: '" + "x" * MAX_PARAMS_BYTES + "'\n"  # would parse, if it were read
    assert "params files are at most 1024 KiB" in params_error(tmp_path, text)


def test_an_alias_in_an_override_is_refused(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("sample: {num_images: 10}\n")
    with pytest.raises(ConfigError, match="anchors and aliases"):
        load_params(path, ["data.classes=[&a x, *a]"])


def test_the_largest_seed_is_accepted(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(f"sample:\n  seed: {2**63 - 1}\n")
    assert load_params(path).sample.seed == 2**63 - 1


# --- case 1 through the command line: one line, nothing written ------------------------------------

@pytest.mark.slow
def test_prepare_refuses_a_misnamed_label_in_one_line_and_writes_nothing(tmp_path, prefect_harness):
    from prefect.settings import PREFECT_API_URL

    labels = [str(i % 12).encode() for i in range(12)]
    labels[5] = b"3.0"
    labelled_shard(tmp_path / "shards" / "shard-000000.tar", labels)
    out = tmp_path / "prepared"
    env = {**os.environ, "PYTHONPATH": str(REPO), "PREFECT_API_URL": PREFECT_API_URL.value(),
           "PREFECT_LOGGING_LEVEL": "WARNING"}
    proc = subprocess.run([sys.executable, "-m", "flows.cli", "prepare", "--set", "data.source=webdataset",
                           "--set", f"data.path={tmp_path / 'shards'}", "--set", "data.resolution=16",
                           "--out", str(out)], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    [line] = proc.stderr.splitlines()
    assert line.startswith("error: ") and "shard-000000.tar:s05: label '3.0'" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shards"]
