"""`synthgen inspect`: summaries of a dataset folder, a release and a releases root."""
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from synthgen.atomic import atomic_write_json
from synthgen.inspect import InspectError, format_summary, passed, summarise
from synthgen.releases import start_release
from tests.test_releases import write_dataset, write_release


def test_dataset_summary_counts_classes_shards_and_generation(tmp_path):
    write_dataset(tmp_path, n=7, max_count=3)
    s = summarise(tmp_path)
    assert s["kind"] == "dataset" and s["release"] is None
    assert (s["num_samples"], s["num_shards"]) == (7, 3)
    assert s["classes"] == {"class0": 3, "class1": 2, "class2": 2}
    assert s["verification"] == {"ok": True, "checked_shards": 3, "failures": []}
    assert s["generation"] == {"sampler": {"ddim": 3, "ddpm": 4}, "steps": {10: 4, 20: 3}, "eta": {0.0: 7},
                               "guidance_scale": {2.0: 7}, "guidance_method": {"cfg_rescale": 7}}
    assert s["images"] == {"format": {"png": 7}, "size": {"8x8": 7}}
    assert s["gate"] is None and s["metrics"] == {} and s["quality"] is None
    json.dumps(s)  # the CLI can print it as JSON

    text = format_summary(s)
    assert text.startswith(f"path           {tmp_path}\nsamples        7 in 3 shards (")
    assert "verified       ok: 3 shards and metadata.parquet match manifest.json" in text
    assert "classes        3\n  class0  3\n  class1  2\n  class2  2\n" in text
    assert "format         png: 7\nsize           8x8: 7\n" in text
    assert "sampler        ddim: 3, ddpm: 4\nsteps          10: 4, 20: 3\n" in text
    assert "guidance_scale 2.0: 7" in text and "guidance_method cfg_rescale: 7" in text


def test_changed_shard_fails_verification(tmp_path):
    write_dataset(tmp_path, n=7, max_count=3)
    with open(tmp_path / "synthetic-000001.tar", "ab") as f:
        f.write(b"\0")
    s = summarise(tmp_path)
    shard = tmp_path / "synthetic-000001.tar"
    assert s["verification"]["ok"] is False and not passed(s)
    assert s["verification"]["failures"] == [f"{shard} is {shard.stat().st_size} bytes, manifest.json lists "
                                             f"{shard.stat().st_size - 1}: it is truncated or replaced"]
    assert f"verified       FAILED: 1 problems\n  - {shard} is " in format_summary(s)
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


# ---- checks that fail exit non-zero: `synthgen inspect` and `synthgen verify` -------------------

def cli(*args):
    from typer.testing import CliRunner

    from flows.cli import app

    return CliRunner().invoke(app, [*map(str, args)])


def flip_a_byte(path, offset=700):
    data = bytearray(path.read_bytes())
    data[offset] ^= 1
    path.write_bytes(bytes(data))


def test_inspect_and_verify_exit_non_zero_on_a_changed_shard(tmp_path):
    write_dataset(tmp_path, n=7, max_count=3)
    assert cli("inspect", tmp_path).exit_code == 0
    ok = cli("verify", tmp_path)
    assert ok.exit_code == 0 and ok.output == f"{tmp_path}: ok, 5 files match their checksums\n"
    flip_a_byte(tmp_path / "synthetic-000001.tar")  # same size: only the sha256 can tell
    (tmp_path / "synthetic-000002.tar").unlink()
    inspected = cli("inspect", tmp_path)
    assert inspected.exit_code == 1 and "verified       FAILED: 2 problems" in inspected.output
    verified = cli("verify", tmp_path)
    assert verified.exit_code == 1
    assert verified.output.splitlines() == [
        f"{tmp_path / 'synthetic-000001.tar'} fails its sha256 check against manifest.json: it was modified",
        f"{tmp_path / 'synthetic-000002.tar'} is listed in manifest.json but missing",
        f"{tmp_path}: FAILED, 2 of 5 checks failed",
    ]


def test_a_changed_release_manifest_fails_inspect_verify_and_open(tmp_path):
    """Case 5 of issue 15 seen from the reader: a release whose manifest.json is no longer the one the index
    recorded is refused by open_release and fails `inspect` and `verify`, naming the release."""
    from synthgen.releases import ReleaseChangedError, open_release

    write_release(tmp_path, "2026-11-20")
    write_release(tmp_path, "2026-11-21")
    assert cli("verify", tmp_path).exit_code == 0
    manifest = tmp_path / "2026-11-21" / "manifest.json"
    edited = json.loads(manifest.read_text())
    edited["num_samples"] = 3
    manifest.write_text(json.dumps(edited))
    with pytest.raises(ReleaseChangedError, match="^release 2026-11-21: .*manifest.json has sha256 .*, the index "
                                                  "recorded .*; it changed after it was finished"):
        open_release(tmp_path)
    assert len(list(open_release(tmp_path, "2026-11-20", decode="raw"))) == 6  # the other release still opens
    for path in (tmp_path, tmp_path / "2026-11-21"):
        inspected = cli("inspect", path)
        assert inspected.exit_code == 1 and "release 2026-11-21: " in inspected.output, inspected.output
    verified = cli("verify", tmp_path)
    assert verified.exit_code == 1 and verified.output.splitlines()[0].startswith("release 2026-11-21: ")
    assert verified.output.splitlines()[-1] == f"{tmp_path}: FAILED, 1 of 8 checks failed"


def test_verify_of_a_folder_that_is_not_a_dataset_is_one_clear_error(tmp_path):
    result = cli("verify", tmp_path)
    assert result.exit_code == 2 and "is neither a dataset folder" in result.output
