"""Issue 15, cases 2, 3 and 5: a stage writes only into its own output folder, one writer at a time, and a
published release is an immutable copy. Every refusal is one line, before any work, and deletes nothing."""
import json
import os
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest

from synthgen.atomic import atomic_write_json, sha256_file
from synthgen.config import load_params
from synthgen.errors import SynthgenError
from synthgen.locks import hold, holder_path
from synthgen.outputs import LOCK, MARKER, OutputRefusedError, claim, read_marker, replacing
from synthgen.releases.publish import publish_dataset
from synthgen.shards import read_manifest, verify_dataset
from synthgen.stages import sample
from synthgen.stages.layout import AutoencoderLayout, DiffusionLayout, FilterLayout
from synthgen.verify import verify_path
from tests.test_releases import write_dataset, write_release
from tests.test_sample_stage import write_params

REPO = Path(__file__).resolve().parents[1]


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under `folder` with its sha256: what "nothing deleted, nothing changed" compares."""
    return {str(p.relative_to(folder)): sha256_file(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def sample_into(models_dir, tmp_path, out, **params):
    """The sample stage without a filter (these tests are about the output folder)."""
    inputs = sample.Inputs(DiffusionLayout(Path(models_dir[0])), AutoencoderLayout(Path(models_dir[1])),
                           FilterLayout(tmp_path / "no-filter"))
    params = load_params(write_params(tmp_path, filter={"enabled": False}, **params))
    return sample.run(params, inputs, Path(out))


def assert_refused(run, folder: Path, match: str) -> None:
    before = snapshot(folder)
    with pytest.raises(SynthgenError, match=match) as refused:
        run()
    assert "\n" not in str(refused.value)
    assert snapshot(folder) == before


# ---- outputs are owned (case 2) -----------------------------------------------------------------

def test_sampling_into_a_published_release_is_refused_even_with_force(models_dir, tmp_path):
    releases = tmp_path / "releases"
    write_release(releases, "2026-11-21", n=6)
    release = releases / "2026-11-21"
    refused = "belongs to a release: releases are never written by a stage, even with --force"
    assert_refused(lambda: sample_into(models_dir, tmp_path, release, num_images=3), release, refused)
    with replacing():
        assert_refused(lambda: sample_into(models_dir, tmp_path, release, num_images=3), release, refused)
    assert verify_path(releases).ok
    for inside in (releases, release / "extra"):  # the root itself, or a new folder in a release
        with replacing():
            assert_refused(lambda: sample_into(models_dir, tmp_path, inside, num_images=3), releases, refused)
    assert not (release / "extra").exists()


def test_a_copy_of_a_release_elsewhere_is_still_a_release(models_dir, tmp_path):
    copy = tmp_path / "copy"
    write_dataset(copy)
    atomic_write_json(copy / MARKER, {"kind": "release", "run_key": None})
    with replacing():
        assert_refused(lambda: sample_into(models_dir, tmp_path, copy), copy, "belongs to a release")


def test_a_prepared_split_or_a_users_folder_is_refused(models_dir, tmp_path):
    train = tmp_path / "data" / "prepared" / "train"
    write_dataset(train)  # another stage's shards, with no marker of its own
    assert_refused(lambda: sample_into(models_dir, tmp_path, train), train,
                   "holds files that no synthgen stage wrote .*; choose another --out, or pass --force to replace it")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "holiday.tar").write_bytes(b"not a shard")
    (mine / "notes.txt").write_text("keep me")
    assert_refused(lambda: sample_into(models_dir, tmp_path, mine), mine, r"\(holiday.tar, notes.txt\)")
    assert not (mine / LOCK).exists()  # refused before it took a lock, too


def test_another_stages_output_is_refused(models_dir, tmp_path):
    models = tmp_path / "models"
    with claim(models, "train_diffusion"):
        (models / "model.safetensors").write_bytes(b"weights")
    assert_refused(lambda: sample_into(models_dir, tmp_path, models), models,
                   "holds the output of stage 'train_diffusion', not of 'sample'")


def test_another_sample_run_is_kept_unless_forced_and_the_same_run_resumes(models_dir, tmp_path):
    out = tmp_path / "out"
    sample_into(models_dir, tmp_path, out, num_images=6)
    first = read_marker(out)
    assert first["kind"] == "sample" and first["run_key"] == read_manifest(out)["run"]["config_hash"]
    assert_refused(lambda: sample_into(models_dir, tmp_path, out, num_images=6, seed=7), out,
                   f"holds another sample run \\(run key {first['run_key']}, this run [0-9a-f]+\\) that this run "
                   "would delete")
    assert sample_into(models_dir, tmp_path, out, num_images=6)["num_samples"] == 6  # the same run: resumed
    assert read_manifest(out)["run"]["resumed_shards"] == 2
    with replacing():
        sample_into(models_dir, tmp_path, out, num_images=6, seed=7)
    assert read_manifest(out)["run"]["seed"] == 7 and read_marker(out)["run_key"] != first["run_key"]
    assert verify_dataset(out) == [] and sorted(p.name for p in out.glob("*.tar")) == [
        s["name"] for s in read_manifest(out)["shards"]]


def test_marked_stage_folders_inside_an_output_are_not_foreign(tmp_path):
    evaluation = tmp_path / "eval"
    with claim(evaluation / "sweep", "sweep_samplers"):
        (evaluation / "sweep" / "sweep.csv").write_text("steps\n")
    with claim(evaluation, "evaluate"):  # eval/sweep is the sweep stage's, not a stranger's file
        pass
    assert read_marker(evaluation)["kind"] == "evaluate"


def test_a_stage_nested_in_its_owners_claim_writes_freely(tmp_path):
    release = tmp_path / "releases" / "2026-11-21"
    with claim(release, "release"):
        with claim(release, "sample", run_key="abc"):  # a release samples into its own folder
            (release / "synthetic-000000.tar").write_bytes(b"shard")
    assert read_marker(release)["kind"] == "release"


def test_force_lets_a_stage_take_over_a_foreign_folder(tmp_path, prefect_harness):
    """Through the CLI without --force, then through the flow (a Prefect flow and task) under `replacing()`."""
    from typer.testing import CliRunner

    from flows.cli import app
    from flows.prepare import prepare

    params = tmp_path / "params.yaml"
    params.write_text("data:\n  source: shapes\n  resolution: 16\n  num_images: 24\n  images_per_shard: 20\n")
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    refused = CliRunner().invoke(app, ["prepare", "--params", str(params), "--out", str(out)])
    assert refused.exit_code == 2 and "holds files that no synthgen stage wrote (notes.txt)" in refused.output
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    with replacing():
        prepare(load_params(params), out=str(out))
    assert read_marker(out)["kind"] == "prepare" and (out / "train" / "manifest.json").is_file()
    assert (out / "notes.txt").read_text() == "keep me"  # prepare replaces its own outputs only


def test_the_force_option_replaces_within_the_stages_flow(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import flows.encode_latents
    from flows.cli import app
    from synthgen import outputs

    params = tmp_path / "params.yaml"
    params.write_text("data:\n  num_images: 40\n")
    seen = []
    monkeypatch.setattr(flows.encode_latents, "encode_latents", lambda params, **folders: seen.append(
        outputs._replacing.get()))
    for flag in ([], ["--force"]):
        assert CliRunner().invoke(app, ["encode", "--params", str(params), *flag]).exit_code == 0
    assert seen == [False, True]


# ---- one writer at a time (case 3) --------------------------------------------------------------

def sample_command(params: str, models_dir, out: Path) -> list[str]:
    return [sys.executable, "-m", "flows.cli", "sample", "--params", params, "--diffusion", models_dir[0],
            "--autoencoder", models_dir[1], "--out", str(out)]


def wait_for(condition, process: subprocess.Popen, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert process.poll() is None, f"exited {process.returncode} first:\n{process.communicate()}"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.slow
def test_two_concurrent_sample_runs_one_is_refused_naming_the_holder(models_dir, tmp_path, prefect_harness):
    """Two `synthgen sample` processes, different params, one folder. The first is held still (SIGSTOP) while it
    holds the lock, so the second surely overlaps it: the second is refused in one line that names the first,
    the first then completes, and the folder holds exactly its shards and manifest."""
    from prefect.settings import PREFECT_API_URL

    out = tmp_path / "out"
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    first_params = write_params(tmp_path / "first", num_images=6, filter={"enabled": False})
    second_params = write_params(tmp_path / "second", num_images=9, seed=5, filter={"enabled": False})
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}  # the session's API: no server per process
    first = subprocess.Popen(sample_command(first_params, models_dir, out), cwd=REPO, env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(holder_path(out / LOCK).exists, first)
        first.send_signal(signal.SIGSTOP)
        try:
            second = subprocess.run(sample_command(second_params, models_dir, out), cwd=REPO, env=env,
                                    capture_output=True, text=True, timeout=300)
        finally:
            first.send_signal(signal.SIGCONT)
        first_output = first.communicate(timeout=300)
    finally:
        first.kill()
    assert first.returncode == 0, first_output
    assert second.returncode == 2
    [line] = [line for line in second.stderr.splitlines() if line.startswith("error: ")]  # beside Prefect's INFO log
    assert "Traceback" not in second.stderr
    assert line.startswith(f"error: {out} is locked by pid {first.pid} on host ") and "sample --params" in line, line
    manifest = read_manifest(out)
    assert manifest["num_samples"] == 6 and manifest["run"]["seed"] == 0
    assert sorted(p.name for p in out.glob("*.tar")) == [s["name"] for s in manifest["shards"]]
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.parquet")) == sorted(
        [s["index"] for s in manifest["shards"]] + ["metadata.parquet"])
    assert verify_dataset(out) == [] and not holder_path(out / LOCK).exists()


# ---- releases are immutable copies (case 5) -----------------------------------------------------

def test_a_published_release_is_a_read_only_copy_that_later_edits_cannot_reach(tmp_path):
    synthetic, evaluation, releases = tmp_path / "data" / "synthetic", tmp_path / "eval", tmp_path / "releases"
    with claim(synthetic, "sample"):
        write_dataset(synthetic, extra={"run": {"seed": 3}, "status": "generated"})
    with claim(evaluation, "evaluate"):
        atomic_write_json(evaluation / "gate.json", {"status": "published", "reasons": []})
        atomic_write_json(evaluation / "metrics.json", {"fd_ratio": 1.0})
        (evaluation / "quality.parquet").write_bytes((synthetic / "metadata.parquet").read_bytes())
    entry = publish_dataset(releases, synthetic, evaluation, date(2026, 11, 21))
    release = releases / entry.release_id
    assert entry.status == "published" and verify_path(release).ok
    assert read_marker(release)["kind"] == "release" and not (release / LOCK).exists()
    for path in (p for p in release.rglob("*") if p.is_file()):
        assert path.stat().st_nlink == 1 and not path.stat().st_mode & 0o222, path  # its own inode, read-only
    published = snapshot(release)

    shard = synthetic / "synthetic-000000.tar"
    with open(shard, "r+b") as f:  # an in-place edit of the working copy
        f.seek(600)
        f.write(b"\xff\xff")
    (synthetic / "metadata.parquet").write_bytes(b"edited")
    assert snapshot(release) == published and verify_path(releases).ok


def test_torchrun_ranks_other_than_0_write_under_rank_0s_claim(tmp_path, monkeypatch):
    out = tmp_path / "models"
    out.mkdir()
    monkeypatch.setenv("WORLD_SIZE", "2")
    with hold(out / LOCK, str(out)):  # as rank 0's process holds it
        monkeypatch.setenv("RANK", "1")
        with claim(out, "train_diffusion"):
            pass
        monkeypatch.setenv("RANK", "0")
        with pytest.raises(SynthgenError, match="is locked by pid"):
            with claim(out, "train_diffusion"):
                pass


def test_a_stage_that_fails_leaves_no_folder_it_made_and_keeps_one_it_found(tmp_path):
    fresh, existing = tmp_path / "fresh" / "out", tmp_path / "existing"
    existing.mkdir()
    for folder in (fresh, existing):
        with pytest.raises(RuntimeError):
            with claim(folder, "prepare"):
                raise RuntimeError("bad input")
    assert not fresh.exists() and existing.is_dir()
