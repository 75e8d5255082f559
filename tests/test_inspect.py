"""`synthgen inspect`: summaries of a dataset folder, a release and a releases root."""
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from synthgen.atomic import atomic_write_json
from synthgen.inspect import InspectError, format_summary, summarise
from synthgen.releases import start_release
from tests.test_releases import write_dataset, write_release


def test_dataset_summary_counts_classes_shards_and_generation(tmp_path):
    write_dataset(tmp_path, n=7, max_count=3)
    s = summarise(tmp_path)
    assert s["kind"] == "dataset" and s["release"] is None
    assert (s["num_samples"], s["num_shards"]) == (7, 3)
    assert s["classes"] == {"class0": 3, "class1": 2, "class2": 2}
    assert s["verification"] == {"ok": True, "checked_shards": 3, "bad_shards": [], "metadata_ok": True}
    assert s["generation"] == {"sampler": {"ddim": 3, "ddpm": 4}, "steps": {10: 4, 20: 3}, "eta": {0.0: 7},
                               "guidance_scale": {2.0: 7}}
    assert s["images"] == {"format": {"png": 7}, "size": {"8x8": 7}}
    assert s["gate"] is None and s["metrics"] == {} and s["quality"] is None
    json.dumps(s)  # the CLI can print it as JSON

    text = format_summary(s)
    assert text.startswith(f"path           {tmp_path}\nsamples        7 in 3 shards (")
    assert "verified       ok: 3 shards and metadata.parquet match manifest.json" in text
    assert "classes        3\n  class0  3\n  class1  2\n  class2  2\n" in text
    assert "format         png: 7\nsize           8x8: 7\n" in text
    assert "sampler        ddim: 3, ddpm: 4\nsteps          10: 4, 20: 3\n" in text
    assert "guidance_scale 2.0: 7" in text


def test_changed_shard_fails_verification(tmp_path):
    write_dataset(tmp_path, n=7, max_count=3)
    with open(tmp_path / "synthetic-000001.tar", "ab") as f:
        f.write(b"\0")
    s = summarise(tmp_path)
    assert s["verification"]["ok"] is False and s["verification"]["bad_shards"] == ["synthetic-000001.tar"]
    assert "verified       FAILED: 1 shards missing or changed (synthetic-000001.tar)" in format_summary(s)
    assert "verified       skipped" in format_summary(summarise(tmp_path, verify=False))


def test_release_summary_shows_gate_metrics_and_quality(tmp_path):
    write_release(tmp_path, "2026-11-21", status="rejected",
                  metrics={"fd_ratio": 9.0, "conditional_accuracy": 0.8125, "per_class": {"class0": 0.5}})
    folder = tmp_path / "2026-11-21"
    pq.write_table(pa.table({"key": ["a", "b"], "confidence": [0.9, 0.1]}), folder / "quality.parquet")
    s = summarise(folder)
    assert s["kind"] == "release" and s["release"]["status"] == "rejected"
    assert s["gate"] == {"status": "rejected", "reasons": ["fd_ratio = 9 fails: must be <= 4"]}
    assert s["metrics"] == {"fd_ratio": 9.0, "conditional_accuracy": 0.8125, "per_class.class0": 0.5}
    assert s["quality"] == {"rows": 2, "columns": ["key", "confidence"]}
    text = format_summary(s)
    assert "release        2026-11-21 rejected (seed " in text and "finished 2026-11-21 02:05)" in text
    assert "gate           rejected\n  - fd_ratio = 9 fails: must be <= 4\n" in text
    assert "  conditional_accuracy  0.8125" in text and "  per_class.class0      0.5" in text
    assert "quality        2 rows: key, confidence" in text


def test_metrics_file_elsewhere_can_be_named(tmp_path):
    write_dataset(tmp_path / "synthetic")
    atomic_write_json(tmp_path / "eval" / "metrics.json", {"kid": 0.01})
    assert summarise(tmp_path / "synthetic", metrics_file=tmp_path / "eval" / "metrics.json")["metrics"] == {"kid": 0.01}


def test_releases_root_lists_every_release(tmp_path):
    write_release(tmp_path, "2026-11-20")
    write_release(tmp_path, "2026-11-21", status="rejected")
    start_release(tmp_path, "2026-11-22", 1, None)
    s = summarise(tmp_path)
    assert s["kind"] == "releases" and s["latest_published"] == "2026-11-20"
    assert [(r["release_id"], r["status"]) for r in s["releases"]] == [
        ("2026-11-20", "published"), ("2026-11-21", "rejected"), ("2026-11-22", "running")]
    json.dumps(s)
    lines = format_summary(s).splitlines()
    assert lines[0] == f"releases       {tmp_path}  (3 releases, latest published: 2026-11-20)"
    assert lines[1].split() == ["release_id", "status", "num_images", "num_shards", "conditional_accuracy",
                                "fd_ratio", "near_duplicate_fraction", "finished_at"]
    assert lines[2].split() == ["2026-11-20", "published", "6", "2", "0.9", "1.5", "0", "2026-11-21", "02:05"]
    assert lines[4].split() == ["2026-11-22", "running", "-", "-", "-", "-", "-", "-"]


def test_a_folder_that_is_not_a_dataset_is_one_clear_error(tmp_path):
    with pytest.raises(InspectError, match="is neither a dataset folder .* nor a releases root"):
        summarise(tmp_path)
    (tmp_path / "manifest.json").write_text('{"format": "other"}')
    with pytest.raises(InspectError, match="has format 'other'"):
        summarise(tmp_path)
