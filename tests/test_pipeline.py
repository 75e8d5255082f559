"""The whole chain on a tiny config: as one Prefect flow, through `dvc repro`, and as scheduled releases."""
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import polars as pl
import pytest

from synthgen.config import load_params
from synthgen.releases import ReleaseLockedError, read_index, release_lock, resolve_release
from synthgen.shards import read_manifest, verify_dataset
from tests.dvc_repo import make_dvc_repo, run

TINY = Path(__file__).parent / "data" / "tiny_params.yaml"


@contextmanager
def working_directory(path: Path):
    before = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


@pytest.fixture(scope="module")
def project(tmp_path_factory, prefect_harness):
    """A folder where the whole pipeline ran once without DVC (every stage a subflow)."""
    folder = tmp_path_factory.mktemp("project")
    shutil.copy(TINY, folder / "params.yaml")
    from flows.pipeline import pipeline

    with working_directory(folder):
        result = pipeline(load_params("params.yaml"), use_dvc=False)
    return folder, result


def test_whole_chain_publishes_a_release_with_report_and_metrics(project):
    folder, result = project
    assert list(result["stages"]) == ["prepare", "train_autoencoder", "encode_latents", "train_diffusion",
                                      "train_filter", "sample", "train_classifier", "sweep_samplers", "evaluate"]
    release = folder / "releases" / result["release"]
    manifest = read_manifest(release)
    assert manifest["status"] == "published" and manifest["num_samples"] == 24
    assert (release / "report.html").is_file() and (release / "quality.parquet").is_file()
    assert (folder / "eval" / "plots" / "quality_vs_steps.csv").read_text().startswith("steps,ddim,heun")
    assert read_manifest(folder / "data" / "synthetic")["status"] == "generated"  # as DVC recorded it
    [entry] = read_index(folder / "releases")
    assert entry.status == "published" and entry.num_images == 24
    assert resolve_release(folder / "releases") == release
    import synthgen

    keys = [s["key"] for s in synthgen.open_dataset(folder / "releases", where=pl.col("label") == 0)]
    assert len(keys) == 2 and synthgen.load_metadata(folder / "releases").collect().height == 24


def run_release(folder: Path, run_date: str, params_path: str = "params.yaml"):
    from flows.release import release

    with working_directory(folder):
        return release(params_path=params_path, run_date=run_date, use_dvc=False)


def test_scheduled_release_appends_to_the_index(project):
    folder, _ = project
    result = run_release(folder, "2026-11-20")
    assert result["release"] == "2026-11-20" and result["status"] == "published"
    ids = [e.release_id for e in read_index(folder / "releases")]
    assert "2026-11-20" in ids and len(ids) == len(set(ids))
    frame = pl.read_parquet(folder / "releases" / "index.parquet")
    assert frame.filter(pl.col("release_id") == "2026-11-20")["num_images"].to_list() == [24]


def test_a_release_with_refill_replaces_its_flagged_samples(project):
    folder, _ = project
    # a near-duplicate threshold at the 99% quantile of real val's distances flags most of the tiny models' samples
    refill = "  memorisation_quantile: 0.99\n  refill: {enabled: true, criteria: [near_duplicate], max_rounds: 1}\n"
    (folder / "refill.yaml").write_text(TINY.read_text().replace("  gate:", refill + "  gate:"))
    run_release(folder, "2026-11-17", params_path="refill.yaml")
    release = folder / "releases" / "2026-11-17"
    manifest = read_manifest(release)
    assert manifest["refill"]["rounds"] == 1 and manifest["refill"]["replaced"] > 0
    assert manifest["num_samples"] == 24 and not verify_dataset(release)
    meta = pl.read_parquet(release / "metadata.parquet")
    assert meta.height == 24 and meta["key"].n_unique() == 24
    assert (meta["refill_round"] == 1).sum() == manifest["refill"]["replaced"] == meta["replaces"].drop_nulls().len()
    assert pl.read_parquet(release / "quality.parquet")["key"].sort().to_list() == meta["key"].sort().to_list()


def test_crashed_release_resumes_its_own_release(project, monkeypatch):
    import synthgen.generate.shard_sampler as stage

    folder, _ = project
    real = stage.generate_shard

    def crash(models, shard, *args, **kwargs):
        if shard.index == 1:
            raise RuntimeError("node lost")
        return real(models, shard, *args, **kwargs)

    monkeypatch.setattr(stage, "generate_shard", crash)
    with pytest.raises(Exception):
        run_release(folder, "2026-11-19")
    assert {e.release_id: e.status for e in read_index(folder / "releases")}["2026-11-19"] == "failed"
    monkeypatch.setattr(stage, "generate_shard", real)
    result = run_release(folder, "2026-11-19")
    assert result["status"] == "published"
    assert read_manifest(folder / "releases" / "2026-11-19")["run"]["resumed_shards"] == 1
    assert [e.release_id for e in read_index(folder / "releases")].count("2026-11-19") == 1


def test_the_release_command_makes_a_release(project):
    """`synthgen release` through the command line (it once failed binding its arguments to the flow)."""
    from typer.testing import CliRunner

    from flows.cli import app

    folder, _ = project
    with working_directory(folder):
        result = CliRunner().invoke(app, ["release", "--no-dvc", "--date", "2026-11-16"])
    assert result.exit_code == 0, result.output
    assert {e.release_id: e.status for e in read_index(folder / "releases")}["2026-11-16"] == "published"
    assert read_manifest(folder / "releases" / "2026-11-16")["num_samples"] == 24


def test_the_release_command_publishes_to_an_s3_releases_root(project, s3_url):
    """`synthgen release --releases s3://...`: made on this disk, uploaded, indexed remotely, opened from the URL."""
    from typer.testing import CliRunner

    import synthgen
    from flows.cli import app
    from synthgen.stages.release import working_root

    folder, _ = project
    with working_directory(folder):
        result = CliRunner().invoke(app, ["release", "--no-dvc", "--date", "2026-11-14", "--releases", s3_url])
        local = working_root(s3_url) / "2026-11-14"
    assert result.exit_code == 0, result.output
    [entry] = read_index(s3_url)
    assert entry.release_id == "2026-11-14" and entry.status == "published" and entry.num_images == 24
    assert resolve_release(s3_url) == f"{s3_url}/2026-11-14" and (folder / local / "manifest.json").is_file()
    assert len(list(synthgen.open_dataset(s3_url, decode="raw"))) == 24


def test_the_release_command_refuses_a_locked_release_in_one_line(project):
    from typer.testing import CliRunner

    from flows.cli import app

    folder, _ = project
    with working_directory(folder), release_lock(folder / "releases" / "2026-11-15"):
        result = CliRunner().invoke(app, ["release", "--no-dvc", "--date", "2026-11-15"])
    assert result.exit_code == 2
    [line] = result.output.splitlines()
    assert line.startswith("error: ") and "locked" in line


def test_a_second_run_on_the_same_release_is_refused(project):
    folder, _ = project
    with release_lock(folder / "releases" / "2026-11-18"):
        with pytest.raises(ReleaseLockedError, match="locked"):
            run_release(folder, "2026-11-18")


@pytest.mark.slow
def test_dvc_repro_runs_the_chain_and_then_has_nothing_to_do(tmp_path):
    repo = make_dvc_repo(tmp_path / "repo", TINY.read_text())
    run(["dvc", "repro"], repo)
    lock = (repo / "dvc.lock").read_text()
    for stage in ["prepare", "train_autoencoder", "encode_latents", "train_diffusion", "train_filter", "sample",
                  "train_classifier", "sweep_samplers", "evaluate"]:
        assert f"  {stage}:" in lock
    assert "up to date" in run(["dvc", "status"], repo).stdout
    second = run(["dvc", "repro"], repo)
    assert "didn't change" in second.stdout and "Running stage" not in second.stdout
    metrics = run(["dvc", "metrics", "show", "--json"], repo).stdout
    assert "conditional_accuracy" in metrics
    run(["dvc", "plots", "show", "-o", "plots_html"], repo)
    page = (repo / "plots_html" / "index.html").read_text()
    assert "vegaEmbed(" in page and "<script src=" not in page  # Vega inlined: renders offline
    for plot in ["per_class_accuracy", "quality_vs_steps", "nn_distances", "training_losses"]:
        assert plot in page
