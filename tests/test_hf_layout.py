"""Consumers load a synthetic folder and a release as they are: Hugging Face `datasets`, wids, and the card."""
import json
import os
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from synthgen.atomic import atomic_write_json
from synthgen.card import card_bytes
from synthgen.config import load_params
from synthgen.releases.publish import publish_dataset
from synthgen.shards import read_manifest
from synthgen.stages import sample
from synthgen.stages.layout import AutoencoderLayout, DiffusionLayout, EvalLayout, FilterLayout
from tests.tiny_models import CLASS_NAMES

NUM_IMAGES = 7  # shards of 3, 3 and 1
METRICS = {"conditional_accuracy": 0.875, "fd_ratio": 1.5, "cas_ratio": 0.9, "near_duplicate_fraction": 0.0}

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def synthetic(models_dir, filter_dir, tmp_path_factory):
    """A folder written by the sample stage's `run`, receipts in `__progress__` included."""
    root = tmp_path_factory.mktemp("hf")
    section = dict(num_images=NUM_IMAGES, images_per_shard=3, batch_size=4, device="cpu", encode_workers=0,
                   license="cc-by-4.0", sampler={"name": "ddim", "steps": 2})
    (root / "params.yaml").write_text(yaml.safe_dump({"sample": section}))
    params = load_params(root / "params.yaml")
    inputs = sample.Inputs(DiffusionLayout(Path(models_dir[0])), AutoencoderLayout(Path(models_dir[1])),
                           FilterLayout(Path(filter_dir)))
    sample.run(params, inputs, root / "synthetic")
    return root / "synthetic"


def read_keys(folder: Path) -> list[str]:
    return pq.read_table(folder / "metadata.parquet", columns=["key"])["key"].to_pylist()


def fake_evaluation(folder: Path, keys: list[str]) -> Path:
    """What `evaluate` writes beside a release's shards: Parquet, CSV, JSON and HTML that a scanner could pick up."""
    layout = EvalLayout(folder)
    atomic_write_json(layout.metrics, METRICS)
    atomic_write_json(layout.gate, {"status": "published", "reasons": [], "checks": []})
    pq.write_table(pa.table({"key": keys, "predicted_label": [0] * len(keys), "near_duplicate": [False] * len(keys)}),
                   layout.quality)
    layout.plots.mkdir(parents=True)
    layout.plot("per_class_accuracy").write_text("class,accuracy\nred,1.0\n")
    layout.report.write_text("<html></html>")
    return folder


@pytest.fixture(scope="module")
def release(synthetic, tmp_path_factory):
    root = tmp_path_factory.mktemp("releases")
    evaluation = fake_evaluation(root.parent / f"{root.name}-eval", read_keys(synthetic))
    entry = publish_dataset(root / "releases", synthetic, evaluation, date(2026, 12, 5))
    return root / "releases" / entry.release_id


@pytest.fixture(scope="module")
def hf_datasets(tmp_path_factory):
    """`datasets`, offline, with its cache in a temporary home (it reads these variables on import)."""
    home = tmp_path_factory.mktemp("hf-home")
    with pytest.MonkeyPatch.context() as m:
        m.setenv("HF_DATASETS_OFFLINE", "1")
        m.setenv("HF_HUB_OFFLINE", "1")
        m.setenv("HF_HOME", str(home))
        import datasets

        yield datasets, home


def load(hf_datasets, folder, **kwargs):
    datasets, home = hf_datasets
    return datasets.load_dataset(str(folder), split="train", cache_dir=str(home / "cache"), **kwargs)


def assert_loads_exactly_the_images(hf_datasets, folder: Path):
    ds = load(hf_datasets, folder)
    datasets = hf_datasets[0]
    assert ds.num_rows == NUM_IMAGES
    assert list(ds.features) == ["png", "cls", "json"]
    assert isinstance(ds.features["png"], datasets.Image)
    assert isinstance(ds.features["cls"], datasets.ClassLabel) and ds.features["cls"].names == CLASS_NAMES
    rows = pq.read_table(folder / "metadata.parquet").to_pylist()
    assert sorted(ds["json"], key=lambda r: r["key"]) == sorted(rows, key=lambda r: r["key"])
    first = ds[0]
    assert first["png"].size == (16, 16) and first["cls"] == first["json"]["label"]
    assert first["json"]["refill_round"] == 0 and first["json"]["replaces"] is None


def test_load_dataset_reads_a_synthetic_folder_as_it_is(synthetic, hf_datasets):
    assert (synthetic / "__progress__").is_dir() and (synthetic / "__index__").is_dir()
    assert_loads_exactly_the_images(hf_datasets, synthetic)
    streamed = list(load(hf_datasets, synthetic, streaming=True))
    assert sorted(r["json"]["key"] for r in streamed) == sorted(read_keys(synthetic))


def test_load_dataset_reads_a_release_as_it_is(release, hf_datasets):
    assert (release / "quality.parquet").is_file() and (release / "plots").is_dir()
    assert_loads_exactly_the_images(hf_datasets, release)


def front_matter(folder: Path) -> dict:
    _, head, _ = (folder / "README.md").read_text().split("---\n", 2)
    return yaml.safe_load(head)


def test_card_front_matter_names_the_shards_license_tags_and_size(synthetic):
    meta = front_matter(synthetic)
    assert meta["configs"][0]["data_files"] == [{"split": "train", "path": "synthetic-*.tar"}]
    assert meta["license"] == "cc-by-4.0" and meta["tags"] == ["synthetic"]
    assert meta["task_categories"] == ["image-classification"] and meta["size_categories"] == ["n<1K"]


def test_release_card_carries_the_gate_verdict_and_headline_metrics(synthetic, release):
    card = (release / "README.md").read_text()
    assert "## Quality gate: published" in card
    assert "| Conditional accuracy | 0.875 |" in card and "| FD ratio | 1.5 |" in card and "| CAS ratio | 0.9 |" in card
    assert "Quality gate" not in (synthetic / "README.md").read_text()
    assert "| `refill_round` | int32 | 0 |" in card  # the schema, documented


def test_card_says_which_filter_screened_the_labels_and_how_often_it_accepted(synthetic):
    assert "## Label filter" in (synthetic / "README.md").read_text()  # sampled with the tiny filter
    record = {"classifier_sha256": "f1" * 32, "min_confidence": 0.7, "max_attempts": 8, "min_acceptance": 0.5,
              "attempts": 10, "accepted": 7, "acceptance_rate": 0.7,
              "per_class": {"red": {"attempts": 4, "accepted": 4, "acceptance_rate": 1.0, "raw_accuracy": 1.0},
                            "green": {"attempts": 6, "accepted": 3, "acceptance_rate": 0.5, "raw_accuracy": 0.6}}}
    card = card_bytes(synthetic, {**read_manifest(synthetic), "filter": record}).decode()
    section = card.split("## Label filter", 1)[1].split("## Classes", 1)[0]
    assert f"filter classifier (weights sha256 `{'f1' * 32}`)" in section
    assert "probability of at least 0.7" in section and "at most 8 attempts per sample" in section
    assert "7 of 10\nattempts were accepted (70.0%)" in section and "independent classifier" in section
    assert "| red | 4 | 4 | 100.0% |" in section and "| green | 6 | 3 | 50.0% |" in section
    assert "Label filter" not in card_bytes(synthetic, {**read_manifest(synthetic), "filter": None}).decode()


def test_wids_index_lists_the_shards_with_relative_urls(synthetic):
    index = json.loads((synthetic / "shards.json").read_text())
    shards = read_manifest(synthetic)["shards"]
    assert index["__kind__"] == "wids-shard-index-v1" and index["wids_version"] == 1
    assert [(s["url"], s["nsamples"], s["filesize"]) for s in index["shardlist"]] == [
        (s["name"], s["count"], s["bytes"]) for s in shards]
    assert all(not os.path.isabs(s["url"]) for s in index["shardlist"])


def test_wids_gives_random_access_to_a_release(release, tmp_path, monkeypatch):
    wids = pytest.importorskip("wids")
    monkeypatch.setenv("WIDS_CACHE", str(tmp_path / "wids-cache"))
    rows = pq.read_table(release / "metadata.parquet").to_pylist()  # in manifest order
    ds = wids.ShardListDataset(str(release / "shards.json"), transformations=[])
    assert len(ds) == NUM_IMAGES
    for i in (5, 0, 6, 3):
        got = ds[i]
        assert got["__key__"] == rows[i]["key"]
        assert json.loads(got[".json"].read())["label"] == rows[i]["label"]


def test_a_license_that_is_not_an_id_is_one_line(tmp_path):
    from synthgen.config import ConfigError

    (tmp_path / "params.yaml").write_text("sample: {license: 'CC BY 4.0'}\n")
    with pytest.raises(ConfigError, match="sample.license") as error:
        load_params(tmp_path / "params.yaml")
    assert "\n" not in str(error.value)
