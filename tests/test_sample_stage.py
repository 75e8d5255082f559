"""The sample stage: byte-identical shards for any batch size or worker, resume, traceability, and the filter
(accept, reject, redraw; exact under resume, Ray and regenerate; the acceptance floor)."""
import json

import numpy as np
import polars as pl
import pytest
import torch

from synthgen.config import load_params
from synthgen.config.sample import SampleConfig
from synthgen.generate.models import load_models
from synthgen.generate.regenerate import regenerate
from synthgen.generate.shard_sampler import Provenance, generate_shard, screen_for
from synthgen.seeds import derive_seed
from synthgen.shards import open_dataset, read_manifest, verify_dataset
from synthgen.stages.sample import build_plan, run_key
from tests.tiny_models import CLASS_NAMES, write_tiny_models

SAMPLER = {"name": "ddim", "steps": 4, "eta": 0.5, "guidance_scale": 2.0}  # eta > 0: sampler noise too


def config(**overrides) -> SampleConfig:
    base = dict(num_images=12, images_per_shard=5, batch_size=4, sampler=SAMPLER, device="cpu", encode_workers=2,
                filter={"min_confidence": 0.5, "max_attempts": 16, "min_acceptance": 0.2})
    return SampleConfig.model_validate({**base, **overrides})


def shard_bytes(models_dir, filter_dir, folder, cfg: SampleConfig, index=0) -> bytes:
    models = load_models(*models_dir, "cpu")
    plan = build_plan(cfg, CLASS_NAMES)
    key = run_key(cfg, plan.seed, models.diffusion.sha256, models.autoencoder.sha256)
    screen = screen_for(cfg, filter_dir, models, CLASS_NAMES)
    entry = generate_shard(models, plan.shard(index), cfg, CLASS_NAMES, Provenance("d", "a", key), folder, screen=screen)
    return (folder / entry["name"]).read_bytes()


@pytest.mark.parametrize("screened", [False, True], ids=["no filter", "filter"])
def test_shard_bytes_do_not_depend_on_batch_size_or_encode_threads(models_dir, filter_dir, tmp_path, screened):
    screen = {} if screened else {"filter": {"enabled": False}}
    a = shard_bytes(models_dir, filter_dir, tmp_path / "a", config(batch_size=5, encode_workers=0, **screen))
    b = shard_bytes(models_dir, filter_dir, tmp_path / "b", config(batch_size=2, encode_workers=2, **screen))
    c = shard_bytes(models_dir, filter_dir, tmp_path / "c", config(batch_size=1, encode_workers=1, **screen))
    assert a == b == c


def test_self_conditioned_shards_do_not_depend_on_batch_size(tmp_path):
    """Each sample feeds back its own x0 estimate, never another row's."""
    models = write_tiny_models(tmp_path / "models", self_conditioning=True)
    plain = {"filter": {"enabled": False}}
    a = shard_bytes(models, None, tmp_path / "a", config(batch_size=5, **plain))
    assert a == shard_bytes(models, None, tmp_path / "b", config(batch_size=2, **plain))


def test_different_seed_gives_different_images(models_dir, filter_dir, tmp_path):
    assert (shard_bytes(models_dir, filter_dir, tmp_path / "a", config())
            != shard_bytes(models_dir, filter_dir, tmp_path / "b", config(seed=1)))


def test_run_key_changes_with_the_metadata_columns(monkeypatch):
    """A receipt written before a column was added belongs to another run, so resume remakes its shard."""
    import synthgen.stages.sample as sample_stage

    before = run_key(config(), 0, "d", "a")
    monkeypatch.setattr(sample_stage, "COLUMNS", sample_stage.COLUMNS[:-1])
    assert run_key(config(), 0, "d", "a") != before


def write_params(tmp_path, **sample) -> str:
    import yaml

    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"sample": {**config().model_dump(mode="json"), **sample}}))
    return str(params)


def run_flow(params, folders, out):
    from flows.sample import run_sample

    diffusion, autoencoder, filter = folders
    return run_sample(load_params(params), diffusion=diffusion, autoencoder=autoencoder, filter=filter, out=str(out))


@pytest.fixture(scope="module")
def folders(models_dir, filter_dir):
    """(diffusion, autoencoder, filter) folders of the tiny models."""
    return (*models_dir, filter_dir)


def shard_hashes(folder) -> dict[str, str]:
    return {s["name"]: s["sha256"] for s in read_manifest(folder)["shards"]}


@pytest.fixture(scope="module")
def reference(folders, tmp_path_factory, prefect_harness):
    """One uninterrupted run of the flow, screened by the tiny filter: the bytes every other way of running must
    reproduce."""
    folder = tmp_path_factory.mktemp("reference")
    run_flow(write_params(folder), folders, folder / "out")
    return folder / "out"


def test_flow_writes_dataset_with_traceable_rows(reference, models_dir):
    manifest = read_manifest(reference)
    assert manifest["num_samples"] == 12 and manifest["num_shards"] == 3
    assert verify_dataset(reference) == []
    rows = pl.read_parquet(reference / "metadata.parquet")
    assert rows["key"].n_unique() == 12
    assert set(rows.columns) >= {"key", "shard", "index", "label", "class_name", "seed", "sampler", "steps", "eta",
                                 "guidance_scale", "guidance_method", "diffusion_sha256", "autoencoder_sha256",
                                 "config_hash", "sha256", "width", "height", "format"}
    assert rows["label"].value_counts().sort("label")["count"].to_list() == [4, 4, 4]
    assert rows["width"].unique().to_list() == [16] and rows["sampler"].unique().to_list() == ["ddim"]
    assert rows["guidance_method"].unique().to_list() == [config().sampler.guidance_method]
    diffusion_sha = load_models(*models_dir, "cpu").diffusion.sha256
    assert rows["diffusion_sha256"].unique().to_list() == [diffusion_sha]
    assert "host" in manifest["run"] and "host" not in rows.columns
    card = (reference / "README.md").read_text()
    assert card.startswith("---\nconfigs:") and "\n# Synthetic dataset\n" in card


def test_batch_size_change_reproduces_the_same_dataset(reference, folders, tmp_path):
    run_flow(write_params(tmp_path, batch_size=3, max_workers=2), folders, tmp_path / "out")
    assert shard_hashes(tmp_path / "out") == shard_hashes(reference)


def test_crashed_run_resumes_to_identical_bytes(reference, folders, tmp_path, monkeypatch):
    import synthgen.generate.shard_sampler as stage

    out = tmp_path / "out"
    params = write_params(tmp_path)
    real = stage.generate_shard

    def crash_on_second_shard(models, shard, *args, **kwargs):
        if shard.index == 1:
            (out / ".synthetic-000001.tar.tmp-crash").write_bytes(b"half a shard")
            raise RuntimeError("simulated crash")
        return real(models, shard, *args, **kwargs)

    monkeypatch.setattr(stage, "generate_shard", crash_on_second_shard)
    with pytest.raises(Exception):
        run_flow(params, folders, out)
    assert not (out / "manifest.json").exists()
    monkeypatch.setattr(stage, "generate_shard", real)
    summary = run_flow(params, folders, out)
    assert summary["num_samples"] == 12
    assert shard_hashes(out) == shard_hashes(reference)
    assert read_manifest(out)["run"]["resumed_shards"] == 2
    assert not list(out.glob("*.tmp-*"))
    keys = pl.read_parquet(out / "metadata.parquet")["key"]
    assert keys.n_unique() == keys.len() == 12


def test_tampered_shard_is_remade_on_rerun(reference, folders, tmp_path):
    out = tmp_path / "out"
    params = write_params(tmp_path)
    run_flow(params, folders, out)
    with open(out / "synthetic-000002.tar", "r+b") as f:
        f.seek(700)
        f.write(b"\x00\x01")
    run_flow(params, folders, out)
    assert read_manifest(out)["run"]["resumed_shards"] == 2
    assert shard_hashes(out) == shard_hashes(reference)


def test_regenerate_reproduces_a_sample_exactly(reference, models_dir):
    result = regenerate(reference, "synthetic-000000007", *models_dir)
    assert result.matches, (result.sha256, result.expected_sha256)


def test_synthetic_dataset_feeds_a_dataloader(reference):
    ds = open_dataset(reference, where=pl.col("label") == 2, batch_size=2)
    # spawn: this test process runs a Prefect server thread, and forking a threaded process is unsafe
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2, multiprocessing_context="spawn")
    batches = list(loader)
    assert sum(len(b["key"]) for b in batches) == 4
    assert batches[0]["image"].shape[1:] == (3, 16, 16) and set(torch.cat([b["label"] for b in batches]).tolist()) == {2}


@pytest.mark.slow
def test_two_ray_workers_write_the_same_bytes_as_one_local_worker(reference, folders, tmp_path):
    """A local Ray cluster (loopback, 2 workers, stopped by the runner) through prefect-ray."""
    pytest.importorskip("prefect_ray")
    import ray

    run_flow(write_params(tmp_path, task_runner="ray", max_workers=2), folders, tmp_path / "out")
    assert not ray.is_initialized()
    assert shard_hashes(tmp_path / "out") == shard_hashes(reference)
    assert read_manifest(tmp_path / "out")["run"]["task_runner"] == "ray"


def test_metadata_answers_duckdb_queries(reference):
    duckdb = pytest.importorskip("duckdb")
    rows = duckdb.sql(f"SELECT class_name, count(*) AS n FROM '{reference / 'metadata.parquet'}' "
                      "GROUP BY class_name ORDER BY class_name").fetchall()
    assert rows == [("blue", 4), ("green", 4), ("red", 4)]


# ---- the filter: accept, reject, redraw --------------------------------------------------------


def stored_pixels(folder, rows: pl.DataFrame) -> np.ndarray:
    from synthgen.shards import read_arrays

    pixels, _, keys = read_arrays(folder)
    by_key = dict(zip(keys, pixels))
    return np.stack([by_key[k] for k in rows["key"]])


def test_every_published_sample_is_one_the_filter_accepts(reference, folders):
    rows = pl.read_parquet(reference / "metadata.parquet").sort("key")
    screen = screen_for(config(), folders[2], load_models(*folders[:2], "cpu"), CLASS_NAMES)
    verdicts = screen.judge(stored_pixels(reference, rows), rows["label"].to_numpy())
    assert verdicts.accepted.all()
    assert np.allclose(verdicts.confidence, rows["filter_confidence"].to_numpy())
    assert rows["attempts"].min() == 1 and rows["attempts"].max() > 1  # some samples were redrawn


def test_each_redraw_takes_the_next_attempt_seed_of_its_sample(reference):
    rows = pl.read_parquet(reference / "metadata.parquet").sort("key")
    plan = build_plan(config(), CLASS_NAMES)
    first_draws = [s for shard in plan.shards() for s in shard.seeds]
    expected = [derive_seed(first_draws[i], "sample/attempt", a - 1) for i, a in enumerate(rows["attempts"])]
    assert rows["seed"].to_list() == expected


def test_the_manifest_tallies_every_draw_per_class(reference):
    rows = pl.read_parquet(reference / "metadata.parquet")
    record = read_manifest(reference)["filter"]
    draws = rows.group_by("class_name").agg(pl.col("attempts").sum(), pl.len().alias("accepted"))
    for name, attempts, accepted in draws.iter_rows():
        tally = record["per_class"][name]
        assert (tally["attempts"], tally["accepted"]) == (attempts, accepted)
        assert tally["acceptance_rate"] == accepted / attempts <= tally["raw_accuracy"]
    assert record["accepted"] == 12 and record["attempts"] == rows["attempts"].sum()
    assert record["classifier_sha256"] == read_manifest(reference)["run"]["filter_sha256"]


def test_regenerate_remakes_a_sample_accepted_after_rejections(reference, models_dir):
    rows = pl.read_parquet(reference / "metadata.parquet")
    redrawn = rows.filter(pl.col("attempts") > 1)["key"].to_list()
    assert redrawn
    for key in redrawn[:2]:
        assert regenerate(reference, key, *models_dir).matches


def test_without_the_filter_every_sample_is_its_first_draw(folders, tmp_path, prefect_harness):
    run_flow(write_params(tmp_path, filter={"enabled": False}), folders, tmp_path / "out")
    rows = pl.read_parquet(tmp_path / "out" / "metadata.parquet")
    assert rows["attempts"].unique().to_list() == [1] and rows["filter_confidence"].null_count() == 12
    assert read_manifest(tmp_path / "out")["filter"] is None
    plan = build_plan(config(), CLASS_NAMES)
    assert sorted(rows["seed"].to_list()) == sorted(s for shard in plan.shards() for s in shard.seeds)


def test_a_class_below_the_acceptance_floor_fails_the_stage_naming_it(folders, tmp_path, prefect_harness):
    with pytest.raises(Exception, match=r"sample.filter accepted .* of the draws of class '(red|green|blue)', below "
                                        r"sample.filter.min_acceptance = 0.9"):
        run_flow(write_params(tmp_path, filter={"min_acceptance": 0.9}), folders, tmp_path / "out")
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_a_sample_rejected_max_attempts_times_fails_the_stage_naming_its_class(folders, tmp_path, prefect_harness):
    with pytest.raises(Exception, match=r"sample.filter rejected all 1 draws of synthetic-\d+ \(class '\w+'\)"):
        run_flow(write_params(tmp_path, filter={"max_attempts": 1}), folders, tmp_path / "out")
