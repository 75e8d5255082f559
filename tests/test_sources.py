"""Each dataset source on small files the tests write, the safe CIFAR unpickler, and DataConfig checks."""
from __future__ import annotations

import gzip
import io
import json
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError

from synthgen.config.data import DataConfig
from synthgen.data.cifar10 import SafeUnpickler, UnsafePickleError, load_batch, safe_unpickle
from synthgen.data.mnist import IMAGES_MAGIC, LABELS_MAGIC
from synthgen.data.shapes import CLASS_NAMES, render_shapes
from synthgen.data.catalog import SOURCES, open_source
from synthgen.data.sources import DataSourceError, Rejection, SourceItem, key_from_path

SAFE_KEY = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def png(colour=(255, 0, 0), size=(12, 10)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "PNG")
    return buf.getvalue()


def entries(cfg: DataConfig) -> list[SourceItem | Rejection]:
    return list(open_source(cfg))


# --- shapes --------------------------------------------------------------------------------------

def test_shapes_are_deterministic_balanced_and_typed():
    pixels, labels, names = render_shapes(24, 16, seed=3)
    again, labels_again, _ = render_shapes(24, 16, seed=3)
    other, _, _ = render_shapes(24, 16, seed=4)
    assert pixels.shape == (24, 16, 16, 3) and pixels.dtype == np.uint8 and labels.dtype == np.int64
    assert names == CLASS_NAMES and len(names) == 12
    assert np.array_equal(pixels, again) and np.array_equal(labels, labels_again)
    assert not np.array_equal(pixels, other)
    assert np.bincount(labels, minlength=12).tolist() == [2] * 12


def test_shapes_vary_and_stand_out_from_their_background():
    pixels, _, _ = render_shapes(12, 32, seed=0)
    assert len({p.tobytes() for p in pixels}) == 12
    # Each image holds both a background region and a distinct shape: a wide spread of colours.
    spread = np.ptp(pixels.reshape(12, -1, 3).astype(int), axis=1).max(axis=1)
    assert np.all(spread > 80)


def test_shape_size_must_fit_the_image():
    with pytest.raises(ValidationError, match="must fit the image"):
        DataConfig(shape_size=(0.2, 0.5))
    bigger, _, _ = render_shapes(12, 32, seed=0, size=(0.38, 0.4))
    smaller, _, _ = render_shapes(12, 32, seed=0, size=(0.05, 0.06))
    background_share = [np.mean(np.all(np.abs(p.astype(int) - p[0, 0]) < 40, axis=-1)) for p in (bigger, smaller)]
    assert background_share[0] < background_share[1]


@pytest.mark.parametrize("resolution", [15, 257])
def test_shapes_refuse_resolutions_outside_16_to_256(resolution):
    with pytest.raises(ValueError, match="16 to 256"):
        render_shapes(1, resolution, seed=0)


def test_shapes_source_matches_render_shapes():
    items = entries(DataConfig(source="shapes", num_images=5, resolution=16, seed=7))
    pixels, labels, _ = render_shapes(5, 16, seed=7)
    assert [i.key for i in items] == [f"shapes-{i:06d}" for i in range(5)]
    assert all(np.array_equal(i.payload, p) for i, p in zip(items, pixels))
    assert [i.label for i in items] == labels.tolist()


# --- digits --------------------------------------------------------------------------------------

def test_digits_source_reads_sklearn_bundle():
    source = open_source(DataConfig(source="digits"))
    items = list(source)
    assert source.class_names == [str(d) for d in range(10)] and len(items) == 1797
    assert items[0].payload.shape == (8, 8) and items[0].payload.dtype == np.uint8
    assert max(int(i.payload.max()) for i in items[:50]) == 255


# --- mnist ---------------------------------------------------------------------------------------

def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_mnist(folder: Path, n: int = 6, split: str = "train", compress: bool = True) -> np.ndarray:
    folder.mkdir(parents=True, exist_ok=True)
    images = np.random.default_rng(0).integers(0, 256, (n, 28, 28), dtype=np.uint8)
    for stem, data in ((f"{split}-images-idx3-ubyte", idx_bytes(images, IMAGES_MAGIC)),
                       (f"{split}-labels-idx1-ubyte", idx_bytes(np.arange(n) % 10, LABELS_MAGIC))):
        path = folder / (stem + (".gz" if compress else ""))
        path.write_bytes(gzip.compress(data) if compress else data)
    return images


@pytest.mark.parametrize("compress", [True, False])
def test_mnist_reads_idx_files(tmp_path, compress):
    images = write_mnist(tmp_path, compress=compress)
    items = entries(DataConfig(source="mnist", path=str(tmp_path)))
    assert len(items) == 6 and [i.label for i in items] == [0, 1, 2, 3, 4, 5]
    assert np.array_equal(items[3].payload, images[3])


def test_mnist_include_test_adds_t10k(tmp_path):
    write_mnist(tmp_path)
    write_mnist(tmp_path, n=3, split="t10k", compress=False)
    items = entries(DataConfig(source="mnist", path=str(tmp_path), include_test=True))
    assert len(items) == 9 and items[-1].key == "mnist-t10k-000002"


def test_mnist_rejects_wrong_magic(tmp_path):
    write_mnist(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.zeros(6), IMAGES_MAGIC)[:8]))
    with pytest.raises(DataSourceError, match="magic 0x00000803, expected 0x00000801"):
        open_source(DataConfig(source="mnist", path=str(tmp_path)))


def test_mnist_rejects_short_data(tmp_path):
    write_mnist(tmp_path, compress=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(DataSourceError, match="data bytes"):
        open_source(DataConfig(source="mnist", path=str(tmp_path)))


def test_mnist_missing_files_say_where_to_put_them(tmp_path):
    with pytest.raises(DataSourceError, match="train-images-idx3-ubyte.*not found.*put"):
        open_source(DataConfig(source="mnist", path=str(tmp_path)))


# --- cifar10 -------------------------------------------------------------------------------------

def cifar_batch(n: int, seed: int) -> dict:
    data = np.random.default_rng(seed).integers(0, 256, (n, 3072), dtype=np.uint8)
    return {b"batch_label": b"test", b"labels": [i % 10 for i in range(n)], b"data": data,
            b"filenames": [f"img_{i}.png".encode() for i in range(n)]}


def py2_style_pickle(obj) -> bytes:
    """A pickle naming numpy.core.multiarray._reconstruct, as the original (numpy 1) batches do."""
    data = pickle.dumps(obj, protocol=3)  # protocol 3: GLOBAL opcodes as text lines, no framing
    return data.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")


def write_cifar(folder: Path, n: int = 4, include_test: bool = False) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    batches = {f"data_batch_{i}": cifar_batch(n, i) for i in range(1, 6)}
    if include_test:
        batches["test_batch"] = cifar_batch(n, 9)
    for name, batch in batches.items():
        (folder / name).write_bytes(py2_style_pickle(batch) if name == "data_batch_1" else pickle.dumps(batch, protocol=4))
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": names, b"num_vis": 3072}, protocol=4))
    return batches


def test_cifar10_reads_batches_in_order_with_channel_planes(tmp_path):
    batches = write_cifar(tmp_path / "cifar-10-batches-py")
    source = open_source(DataConfig(source="cifar10", path=str(tmp_path)))
    items = list(source)
    assert source.class_names[0] == "airplane" and len(items) == 20
    assert items[4].key == "data_batch_2-000000" and items[5].label == 1
    first = batches["data_batch_1"][b"data"][0]
    assert items[0].payload.shape == (32, 32, 3)
    assert tuple(items[0].payload[0, 1]) == (first[1], first[1024 + 1], first[2048 + 1])


def test_cifar10_include_test(tmp_path):
    write_cifar(tmp_path, include_test=True)
    items = entries(DataConfig(source="cifar10", path=str(tmp_path), include_test=True))
    assert len(items) == 24 and items[-1].key == "test_batch-000003"


def test_cifar10_missing_batches_say_where_to_put_them(tmp_path):
    write_cifar(tmp_path)
    (tmp_path / "data_batch_4").unlink()
    with pytest.raises(DataSourceError, match="data_batch_4 not found.*put"):
        open_source(DataConfig(source="cifar10", path=str(tmp_path)))


class RunsShell:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class Evals:
    def __reduce__(self):
        return eval, ("__import__('os').getcwd()",)


def test_unpickler_refuses_os_system(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({b"data": RunsShell(marker)}, protocol=2)
    with pytest.raises(UnsafePickleError, match="refusing to unpickle global"):
        safe_unpickle(payload)
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_unpickler_refuses_any_other_global(protocol):
    with pytest.raises(UnsafePickleError, match=r"global (__builtin__|builtins)\.eval"):
        safe_unpickle(pickle.dumps(Evals(), protocol=protocol))


def test_unpickler_allows_exactly_the_numpy_globals():
    assert SafeUnpickler.find_class(None, "numpy", "ndarray") is np.ndarray
    for module, name in [("numpy", "load"), ("numpy.lib.format", "read_array"), ("pickle", "loads"),
                         ("numpy.core.multiarray", "scalar"), ("builtins", "getattr")]:
        with pytest.raises(UnsafePickleError):
            SafeUnpickler.find_class(None, module, name)


def test_malicious_batch_file_is_a_data_source_error(tmp_path):
    marker = tmp_path / "pwned"
    write_cifar(tmp_path)
    (tmp_path / "data_batch_3").write_bytes(pickle.dumps({b"data": RunsShell(marker), b"labels": []}))
    with pytest.raises(DataSourceError, match="data_batch_3.*refusing"):
        open_source(DataConfig(source="cifar10", path=str(tmp_path)))
    assert not marker.exists()


def test_garbage_batch_is_a_data_source_error(tmp_path):
    path = tmp_path / "data_batch_1"
    path.write_bytes(b"not a pickle at all")
    with pytest.raises(DataSourceError, match="not a CIFAR-10 python batch"):
        load_batch(path)


# --- imagefolder ---------------------------------------------------------------------------------

def make_imagefolder(root: Path) -> None:
    (root / "cats" / "nested").mkdir(parents=True)
    (root / "dogs").mkdir()
    (root / ".hidden_class").mkdir()
    (root / "cats" / "a b.png").write_bytes(png((255, 0, 0)))
    (root / "cats" / "a_b.png").write_bytes(png((250, 0, 0)))
    (root / "cats" / "nested" / "deep.png").write_bytes(png((0, 255, 0)))
    (root / "cats" / ".DS_Store").write_bytes(b"\0\0")
    (root / "dogs" / "dog#1.jpg").write_bytes(png((0, 0, 255)))
    (root / "stray.png").write_bytes(png())


def test_imagefolder_labels_keys_and_strays(tmp_path):
    make_imagefolder(tmp_path)
    source = open_source(DataConfig(source="imagefolder", path=str(tmp_path)))
    got = list(source)
    items = [e for e in got if isinstance(e, SourceItem)]
    strays = [e for e in got if isinstance(e, Rejection)]
    assert source.class_names == ["cats", "dogs"]
    assert [i.label for i in items] == [0, 0, 0, 1]
    assert [i.origin for i in items][-1].endswith("dogs/dog#1.jpg")
    keys = [i.key for i in items]
    assert len(set(keys)) == 4 and all(set(k) <= SAFE_KEY for k in keys)  # "a b" and "a_b" stay apart
    assert keys[2] == "cats_nested_deep_png" and keys[3] == "dogs_dog_1_jpg"
    assert [(r.reason, Path(r.origin).name) for r in strays] == [("not_in_class_folder", "stray.png")]


def test_imagefolder_missing_or_flat_folder_is_a_clear_error(tmp_path):
    with pytest.raises(DataSourceError, match="not a folder.*one subfolder of images per class"):
        open_source(DataConfig.model_validate({"source": "imagefolder", "path": str(tmp_path / "nope")},
                                              context={"check_paths": False}))
    (tmp_path / "only.png").write_bytes(png())
    with pytest.raises(DataSourceError, match="no class subfolders"):
        open_source(DataConfig(source="imagefolder", path=str(tmp_path)))


def test_keys_never_collide():
    used: set[str] = set()
    keys = [key_from_path(raw, used) for raw in ["a b", "a_b", "a?b", "a b", "звезда", "звёзды"]]
    assert len(set(keys)) == len(keys) and all(set(k) <= SAFE_KEY for k in keys)


# --- webdataset ----------------------------------------------------------------------------------

def write_tar(path: Path, members: list[tuple[str, bytes]], mode: str = "w") -> None:
    with tarfile.open(path, mode) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_webdataset_int_labels_image_detection_and_bad_samples(tmp_path):
    write_tar(tmp_path / "shard-000000.tar", [
        ("s0.png", png()), ("s0.cls", b"2"),
        ("dir/s1.JPG", png((0, 255, 0))), ("dir/s1.cls", b"0"), ("dir/s1.json", b"{}"),
        ("s2.txt", b"caption only"), ("s2.cls", b"1"),
        ("s3.webp", png()),
    ])
    write_tar(tmp_path / "shard-000001.tar.gz", [("s0.bmp", png()), ("s0.cls", b"1")], mode="w:gz")
    source = open_source(DataConfig(source="webdataset", path=str(tmp_path)))
    got = list(source)
    assert source.class_names == ["0", "1", "2"]
    assert [type(e).__name__ for e in got] == ["SourceItem", "SourceItem", "Rejection", "Rejection", "SourceItem"]
    assert [e.key for e in got[:4]] == ["s0", "dir_s1", "s2", "s3"]
    assert got[4].key.startswith("s0_")  # the same key in a second shard gets a unique suffix
    assert [e.reason for e in got if isinstance(e, Rejection)] == ["no_image", "no_label"]
    assert got[0].label == 2 and got[1].label == 0 and got[4].origin.endswith("shard-000001.tar.gz:s0")


def test_webdataset_class_names_from_classes_json_and_glob(tmp_path):
    (tmp_path / "classes.json").write_text(json.dumps(["cat", "dog"]))
    (tmp_path / "shards").mkdir()
    write_tar(tmp_path / "shards" / "a.tar", [("x.png", png()), ("x.label", b"dog"), ("y.png", png()), ("y.label", b"cow")])
    cfg = DataConfig(source="webdataset", path=str(tmp_path / "shards" / "*.tar"), label_field="label")
    source = open_source(cfg)
    got = list(source)
    assert source.class_names == ["cat", "dog"]
    assert got[0].label == 1 and got[1].reason == "unknown_class"


def test_webdataset_corrupt_shard_is_a_rejection_not_a_crash(tmp_path):
    write_tar(tmp_path / "a.tar", [("x.png", png()), ("x.cls", b"0")])
    good = (tmp_path / "a.tar").read_bytes()
    write_tar(tmp_path / "b.tar.gz", [("y.png", png()), ("y.cls", b"1"), ("z.png", png()), ("z.cls", b"1")], mode="w:gz")
    data = (tmp_path / "b.tar.gz").read_bytes()
    (tmp_path / "b.tar.gz").write_bytes(data[: len(data) // 2])
    got = list(open_source(DataConfig(source="webdataset", path=str(tmp_path))))
    assert got[0].key == "x" and isinstance(got[0], SourceItem)
    assert got[-1].reason == "unreadable_shard" and got[-1].origin.endswith("b.tar.gz")
    assert good == (tmp_path / "a.tar").read_bytes()


def test_webdataset_without_shards_is_a_clear_error(tmp_path):
    with pytest.raises(DataSourceError, match="no shards found"):
        open_source(DataConfig(source="webdataset", path=str(tmp_path)))


# --- config --------------------------------------------------------------------------------------

@pytest.mark.parametrize("source", ["imagefolder", "webdataset", "mnist", "cifar10"])
def test_config_requires_an_existing_path_for_file_sources(tmp_path, source):
    with pytest.raises(ValidationError, match="required when data.source"):
        DataConfig(source=source)
    with pytest.raises(ValidationError, match="does not exist: put"):
        DataConfig(source=source, path=str(tmp_path / "missing"))
    unchecked = DataConfig.model_validate({"source": source, "path": "missing"}, context={"check_paths": False})
    assert unchecked.path == "missing"


@pytest.mark.parametrize("bad", [{"resolution": 8}, {"resolution": 512}, {"image_format": "gif"}, {"source": "imagenet"},
                                 {"val_fraction": 1.0}, {"classes": ["a", "a"]}, {"max_image_pixels": 10**9}, {"nope": 1}])
def test_config_rejects_bad_values(bad):
    with pytest.raises(ValidationError):
        DataConfig(**bad)


def test_every_source_declares_its_options_once_and_the_data_section_validates_them():
    for name, spec in SOURCES.items():
        assert spec.name == name
        assert set(spec.options.model_fields) <= set(DataConfig.model_fields), name
        assert type(DataConfig(source=name, path=".").options()) is spec.options
    with pytest.raises(ValidationError, match="shape_size"):
        DataConfig(source="mnist", path=".", shape_size=(0.3, 0.1))  # every source's options are checked

