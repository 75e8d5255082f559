"""Refill: flagged samples leave the shards, replacements with new seeds and the same labels take their place."""
import glob
import shutil
import tarfile
from types import SimpleNamespace

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import webdataset as wds

from synthgen.config import ConfigError, load_params
from synthgen.config.evaluate import RefillConfig
from synthgen.config.sample import SampleConfig
from synthgen.errors import SynthgenError
from synthgen.generate import refill as refill_module
from synthgen.generate.models import load_models
from synthgen.generate.refill import refill_dataset, refill_progress, select_flagged
from synthgen.generate.regenerate import regenerate
from synthgen.generate.shard_sampler import Provenance, generate_shard
from synthgen.seeds import derive_seed
from synthgen.shards import read_manifest, verify_dataset
from synthgen.shards import manifest as manifest_module
from synthgen.shards.schema import read_class_names
from synthgen.stages.sample import build_plan, finish_run
from tests.tiny_models import CLASS_NAMES, write_tiny_models

SEED = 7
CFG = SampleConfig.model_validate(dict(num_images=12, images_per_shard=5, batch_size=4, device="cpu", encode_workers=0,
                                       sampler={"name": "ddim", "steps": 3, "eta": 0.5}, filter={"enabled": False}))
FLAGGED = ["synthetic-000000001", "synthetic-000000010", "synthetic-000000011"]  # the last shard holds only 10 and 11


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def models(models_dir):
    return load_models(*models_dir, "cpu")


@pytest.fixture(scope="module")
def original(models, tmp_path_factory):
    """A 12-image dataset in shards of 5, 5 and 2, written by the sample stage's own code."""
    folder = tmp_path_factory.mktemp("original")
    plan = build_plan(CFG, CLASS_NAMES, SEED)
    key = refill_module.key_of(CFG, SEED, models, None)
    provenance = Provenance(models.diffusion.sha256, models.autoencoder.sha256, key)
    entries = [generate_shard(models, plan.shard(i), CFG, CLASS_NAMES, provenance, folder) for i in range(plan.num_shards)]
    run = {"seed": SEED, "diffusion_sha256": models.diffusion.sha256, "autoencoder_sha256": models.autoencoder.sha256,
           "config_hash": key, "out": str(folder)}
    finish_run(folder, plan, entries, CLASS_NAMES, {"sample": CFG.model_dump(mode="json")}, run)
    return folder


def write_quality(folder, near_duplicate=(), misclassified=()):
    """A fake evaluation: quality.parquet flagging the given keys as near-duplicates or as classified otherwise."""
    rows = pq.read_table(folder / "metadata.parquet").to_pylist()
    pq.write_table(pa.table({
        "key": [r["key"] for r in rows],
        "predicted_label": [(r["label"] + 1) % 3 if r["key"] in misclassified else r["label"] for r in rows],
        "near_duplicate": [r["key"] in near_duplicate for r in rows],
    }), folder / "quality.parquet")


def copy_of(original, path):
    shutil.copytree(original, path)
    write_quality(path, near_duplicate=FLAGGED)
    return path


def refill(folder, models, flagged=FLAGGED, round=1):
    return refill_dataset(folder, flagged, models, CFG, SEED, round, ("near_duplicate",))


@pytest.fixture(scope="module")
def reference(original, models, tmp_path_factory):
    """One uninterrupted refill round: the bytes every interrupted one must end with."""
    folder = copy_of(original, tmp_path_factory.mktemp("reference") / "ds")
    refill(folder, models)
    return folder


def metadata(folder):
    return {r["key"]: r for r in pq.read_table(folder / "metadata.parquet").to_pylist()}


def tar_keys(folder) -> list[str]:
    """Keys as a consumer reading the raw tars with webdataset sees them."""
    urls = sorted(glob.glob(str(folder / "synthetic-*.tar")))
    return [s["__key__"] for s in wds.WebDataset(urls, shardshuffle=False, empty_check=False)]


def tree_bytes(folder) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_flagged_samples_are_replaced_with_new_seeds_and_the_same_labels(original, reference):
    before, after = metadata(original), metadata(reference)
    new = [f"synthetic-{i:09d}" for i in (12, 13, 14)]
    assert len(after) == 12 == read_manifest(reference)["num_samples"]
    assert not set(FLAGGED) & set(after) and set(new) <= set(after)
    for key, replaced in zip(new, FLAGGED):
        row = after[key]
        assert row["replaces"] == replaced and row["refill_round"] == 1
        assert row["label"] == before[replaced]["label"] and row["shard"] == before[replaced]["shard"]
        assert row["seed"] == derive_seed(SEED, "sample/seed", int(key[-9:]))
        assert row["config_hash"] == before[replaced]["config_hash"]
    kept = [r for k, r in after.items() if k not in new]
    assert all(r["refill_round"] == 0 and r["replaces"] is None for r in kept)
    assert len({r["seed"] for r in after.values()} | {before[k]["seed"] for k in FLAGGED}) == 15  # never reused
    assert sorted(tar_keys(reference)) == sorted(after) and len(tar_keys(reference)) == 12
    with tarfile.open(reference / "synthetic-000002.tar") as tar:
        assert not [n for n in tar.getnames() if n.split(".")[0] in FLAGGED]


def test_manifest_records_the_round_and_the_dataset_verifies(original, reference):
    manifest = read_manifest(reference)
    assert verify_dataset(reference) == []
    assert [(s["name"], s["count"]) for s in manifest["shards"]] == [
        (s["name"], s["count"]) for s in read_manifest(original)["shards"]]
    assert manifest["refill"]["rounds"] == 1 and manifest["refill"]["replaced"] == 3
    assert manifest["refill"]["criteria"] == ["near_duplicate"] and manifest["status"] == "generated"
    assert not (reference / "quality.parquet").exists() and not (reference / "__refill__").exists()
    assert "## Refill" in (reference / "README.md").read_text()


def test_refill_leaves_one_schema_in_every_shard_index(reference):
    """Rewritten and untouched shards alike: the same columns and types, no null refill_round."""
    merged = pq.read_schema(reference / "metadata.parquet").remove_metadata()
    for shard in read_manifest(reference)["shards"]:
        index = pq.read_table(reference / shard["index"])
        assert index.schema.remove_metadata() == merged, shard["name"]
        assert index["refill_round"].null_count == 0
    assert read_class_names(pq.read_schema(reference / "metadata.parquet")) == CLASS_NAMES


def test_a_replacement_can_be_regenerated_from_its_row(reference, models_dir):
    assert regenerate(reference, "synthetic-000000013", *models_dir).matches


def test_refill_is_deterministic(original, reference, models, tmp_path):
    again = copy_of(original, tmp_path / "again")
    refill(again, models)
    assert tree_bytes(again) == tree_bytes(reference)


def test_second_round_continues_the_indices(reference, models, tmp_path):
    folder = tmp_path / "ds"
    shutil.copytree(reference, folder)
    summary = refill(folder, models, ["synthetic-000000000", "synthetic-000000013"], round=2)
    rows = metadata(folder)
    assert summary["replacements"] == ["synthetic-000000015", "synthetic-000000016"] and len(rows) == 12
    assert rows["synthetic-000000016"]["replaces"] == "synthetic-000000013"
    assert rows["synthetic-000000016"]["refill_round"] == 2 and rows["synthetic-000000012"]["refill_round"] == 1
    record = read_manifest(folder)["refill"]
    assert record["rounds"] == 2 and record["replaced"] == 5 and record["next_index"] == 17
    assert sorted(tar_keys(folder)) == sorted(rows) and verify_dataset(folder) == []
    assert refill(folder, models, [], round=2)["resumed"]  # a recorded round is not made again


class Crash(Exception):
    pass


def crash_on(monkeypatch, module, name, after_calls=0):
    real, calls = getattr(module, name), []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) > after_calls:
            raise Crash(name)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, failing)


@pytest.mark.parametrize("module,name,after_calls", [
    (refill_module, "generate_shard", 0),  # before any shard is touched
    (refill_module, "write_shard", 1),  # one of the two shards that lose a sample rewritten
    (manifest_module, "canonical_json", 0),  # new metadata.parquet, old manifest
    (refill_module, "tidy", 0),  # committed, journal and staging shard still there
])
def test_a_crashed_round_reruns_to_the_same_bytes(original, reference, models, tmp_path, monkeypatch,
                                                  module, name, after_calls):
    folder = copy_of(original, tmp_path / "ds")
    with monkeypatch.context() as m:
        crash_on(m, module, name, after_calls)
        with pytest.raises(Crash):
            refill(folder, models)
    if name != "tidy":
        assert refill_progress(folder).pending == 1
    refill(folder, models)
    assert tree_bytes(folder) == tree_bytes(reference)
    assert len(tar_keys(folder)) == 12


def test_an_interrupted_round_resumes_from_its_journal(original, reference, models, tmp_path, monkeypatch):
    folder = copy_of(original, tmp_path / "ds")
    with monkeypatch.context() as m:
        crash_on(m, refill_module, "write_shard", 1)
        with pytest.raises(Crash):
            refill(folder, models)
    assert refill_progress(folder).started and not (folder / "quality.parquet").exists()
    assert refill(folder, models, flagged=None)["resumed"]
    assert tree_bytes(folder) == tree_bytes(reference)


def test_select_flagged_takes_near_duplicates_and_leaves_labels_to_the_filter(original, tmp_path):
    folder = tmp_path / "ds"
    shutil.copytree(original, folder)
    write_quality(folder, near_duplicate=["synthetic-000000003"], misclassified=["synthetic-000000005"])
    assert select_flagged(folder, ["near_duplicate"]) == ["synthetic-000000003"]
    for unknown in (["blurry"], ["misclassified"]):
        with pytest.raises(SynthgenError, match=r"choose one or more of \['near_duplicate'\]"):
            select_flagged(folder, unknown)
    table = pq.read_table(folder / "quality.parquet")
    pq.write_table(table.slice(1), folder / "quality.parquet")
    with pytest.raises(SynthgenError, match="no row for 1 samples .* evaluate the dataset again"):
        select_flagged(folder, ["near_duplicate"])


def test_refuses_other_params_and_unknown_keys(original, models, tmp_path):
    folder = copy_of(original, tmp_path / "ds")
    with pytest.raises(SynthgenError, match="refill with the params, seed and models that made it"):
        refill_dataset(folder, FLAGGED, models, CFG, SEED + 1, 1)
    with pytest.raises(SynthgenError, match="are not samples of"):
        refill(folder, models, ["synthetic-000000099"])
    with pytest.raises(SynthgenError, match="needs round 1 first"):
        refill(folder, models, round=2)
    assert refill(folder, models, [])["replaced"] == 0 and "refill" not in read_manifest(folder)
    assert tree_bytes(original) == {k: v for k, v in tree_bytes(folder).items() if k != "quality.parquet"}


@pytest.mark.parametrize("text,fragment", [
    ("evaluate:\n  refill:\n    criteria: [blurry]\n", "evaluate.refill.criteria.0 = 'blurry': Input should be"),
    ("evaluate:\n  refill:\n    max_rounds: 0\n", "evaluate.refill.max_rounds = 0: Input should be greater than or equal to 1"),
    ("evaluate:\n  refill:\n    criteria: []\n", "evaluate.refill.criteria = []"),
    ("evaluate:\n  refill:\n    criteria: [near_duplicate, near_duplicate]\n", "names a criterion twice"),
    ("evaluate:\n  refill:\n    criteria: [near_duplicate, misclassified]\n",
     "misclassified is no longer a refill criterion: the sample filter (sample.filter) now replaces samples of the "
     "wrong class while sampling"),
])
def test_bad_refill_config_is_one_line(tmp_path, text, fragment):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_params(path)
    assert fragment in str(err.value) and "\n" not in str(err.value)


# ---- the release loop (synthgen.stages.release), with fakes for evaluation and refill -----------


def fake_release(monkeypatch, verdicts, flagged, rounds_done=0, enabled=True, max_rounds=3, pending=None):
    from synthgen.stages import release

    calls = {"evaluate": 0, "refill": []}

    def evaluated(params, inputs, target):
        status = verdicts[min(calls["evaluate"], len(verdicts) - 1)]
        calls["evaluate"] += 1
        return {"status": status, "reasons": [] if status == "published" else ["too few"]}

    monkeypatch.setattr(release, "evaluated", evaluated)
    monkeypatch.setattr(release, "select_flagged", lambda target, criteria: flagged[len(calls["refill"])])
    monkeypatch.setattr(release, "refill_round", lambda params, inputs, target, seed, round, keys:
                        calls["refill"].append((round, keys)))
    monkeypatch.setattr(release, "refill_progress", lambda target: refill_module.RefillProgress(rounds_done, pending))
    params = SimpleNamespace(sample=CFG, evaluate=SimpleNamespace(refill=RefillConfig(enabled=enabled, max_rounds=max_rounds)))
    return release, params, calls


def test_release_refills_until_nothing_is_flagged(monkeypatch, tmp_path):
    release, params, calls = fake_release(monkeypatch, ["rejected", "rejected", "published"], [["a", "b"], ["c"], []])
    assert release.evaluate_and_refill(params, None, tmp_path, SEED)["status"] == "published"
    assert calls["refill"] == [(1, ["a", "b"]), (2, ["c"])] and calls["evaluate"] == 3


def test_release_stops_after_max_rounds_and_gates_the_last_evaluation(monkeypatch, tmp_path):
    release, params, calls = fake_release(monkeypatch, ["rejected"], [["a"]] * 5, max_rounds=2)
    assert release.evaluate_and_refill(params, None, tmp_path, SEED)["reasons"] == ["too few"]
    assert [r for r, _ in calls["refill"]] == [1, 2] and calls["evaluate"] == 3


def test_release_resumes_after_the_recorded_rounds(monkeypatch, tmp_path):
    release, params, calls = fake_release(monkeypatch, ["published"], [["a"]] * 5, rounds_done=2, max_rounds=3)
    release.evaluate_and_refill(params, None, tmp_path, SEED)
    assert [r for r, _ in calls["refill"]] == [3]


def test_release_without_refill_evaluates_once(monkeypatch, tmp_path):
    release, params, calls = fake_release(monkeypatch, ["rejected"], [["a"]], enabled=False)
    assert release.evaluate_and_refill(params, None, tmp_path, SEED)["status"] == "rejected"
    assert calls == {"evaluate": 1, "refill": []}


def test_refill_round_replaces_the_flagged_samples(original, reference, models_dir, tmp_path):
    from synthgen.stages.layout import AutoencoderLayout, DiffusionLayout, FilterLayout
    from synthgen.stages.release import refill_round

    folder = copy_of(original, tmp_path / "ds")
    params = SimpleNamespace(sample=CFG, evaluate=SimpleNamespace(refill=RefillConfig(criteria=("near_duplicate",))))
    inputs = SimpleNamespace(diffusion=DiffusionLayout(models_dir[0]), autoencoder=AutoencoderLayout(models_dir[1]),
                             filter=FilterLayout(tmp_path / "unread"))  # CFG samples without the filter
    refill_round(params, inputs, folder, SEED, 1, select_flagged(folder, ("near_duplicate",)))
    assert tree_bytes(folder) == tree_bytes(reference)


@pytest.mark.parametrize("progress,sampled,resumed", [
    (refill_module.RefillProgress(0, None), True, []),
    (refill_module.RefillProgress(1, None), False, []),
    (refill_module.RefillProgress(1, 2), False, [(2, None)]),
])
def test_a_refilled_release_is_not_sampled_again(monkeypatch, tmp_path, progress, sampled, resumed):
    release, params, calls = fake_release(monkeypatch, ["published"], [[], []], progress.rounds, pending=progress.pending)
    assert release.needs_sampling(params, tmp_path) == sampled
    release.evaluate_and_refill(params, None, tmp_path, SEED)
    assert calls["refill"] == resumed


FILTER_CFG = CFG.model_copy(update={"filter": CFG.filter.model_copy(update={"enabled": True, "min_acceptance": 0.1})})


@pytest.fixture(scope="module")
def screen(models, filter_dir):
    from synthgen.generate.shard_sampler import screen_for

    return screen_for(FILTER_CFG, filter_dir, models, CLASS_NAMES)


@pytest.fixture(scope="module")
def screened(models, screen, tmp_path_factory):
    """The 12-image dataset sampled with the filter, its near-duplicates flagged."""
    folder, plan = tmp_path_factory.mktemp("screened") / "ds", build_plan(FILTER_CFG, CLASS_NAMES, SEED)
    key = refill_module.key_of(FILTER_CFG, SEED, models, screen)
    provenance = Provenance(models.diffusion.sha256, models.autoencoder.sha256, key)
    entries = [generate_shard(models, plan.shard(i), FILTER_CFG, CLASS_NAMES, provenance, folder, screen=screen)
               for i in range(plan.num_shards)]
    finish_run(folder, plan, entries, CLASS_NAMES, {"sample": FILTER_CFG.model_dump(mode="json")}, {"seed": SEED},
               screen)
    write_quality(folder, near_duplicate=FLAGGED)
    return folder


def screened_refill(folder, models, screen):
    return refill_dataset(folder, FLAGGED, models, FILTER_CFG, SEED, 1, ("near_duplicate",), screen)


def test_refill_screens_its_replacements_with_the_sample_filter(models, screen, screened, tmp_path):
    import numpy as np
    import polars as pl

    from synthgen.shards import read_arrays

    folder = shutil.copytree(screened, tmp_path / "ds")
    screened_refill(folder, models, screen)
    rows = pl.read_parquet(folder / "metadata.parquet").filter(pl.col("refill_round") == 1).sort("key")
    assert sorted(rows["replaces"]) == FLAGGED and rows["filter_confidence"].null_count() == 0
    pixels, _, keys = read_arrays(folder)
    by_key = dict(zip(keys, pixels))
    verdicts = screen.judge(np.stack([by_key[k] for k in rows["key"]]), rows["label"].to_numpy())
    assert verdicts.accepted.all() and np.allclose(verdicts.confidence, rows["filter_confidence"].to_numpy())
    assert verify_dataset(folder) == []


def test_the_filter_record_counts_the_refill_draws(models, screen, screened, tmp_path):
    import polars as pl

    folder = shutil.copytree(screened, tmp_path / "ds")
    before = read_manifest(folder)["filter"]
    screened_refill(folder, models, screen)
    after = read_manifest(folder)["filter"]
    rows = pl.read_parquet(folder / "metadata.parquet").filter(pl.col("refill_round") == 1)
    assert after["attempts"] == before["attempts"] + rows["attempts"].sum() > before["attempts"]
    assert after["accepted"] == before["accepted"] + len(FLAGGED)
    assert after["acceptance_rate"] == after["accepted"] / after["attempts"]
    for label, name in enumerate(CLASS_NAMES):
        drawn = rows.filter(pl.col("label") == label)
        was = before["per_class"].get(name, {"attempts": 0, "accepted": 0})
        assert after["per_class"][name]["attempts"] == was["attempts"] + drawn["attempts"].sum()
        assert after["per_class"][name]["accepted"] == was["accepted"] + len(drawn)


def test_a_crashed_screened_round_keeps_the_draws_of_its_staging_shard(models, screen, screened, tmp_path, monkeypatch):
    reference = shutil.copytree(screened, tmp_path / "reference")
    screened_refill(reference, models, screen)
    folder = shutil.copytree(screened, tmp_path / "ds")
    with monkeypatch.context() as m:
        crash_on(m, refill_module, "write_shard", 1)  # after the staging shard, one shard rewritten
        with pytest.raises(Crash):
            screened_refill(folder, models, screen)
    screened_refill(folder, models, screen)
    assert read_manifest(folder)["filter"] == read_manifest(reference)["filter"]


def test_a_refill_below_the_acceptance_floor_fails_and_commits_nothing(models, filter_dir, screened, tmp_path):
    from synthgen.errors import SynthgenError
    from synthgen.generate.shard_sampler import screen_for

    folder = shutil.copytree(screened, tmp_path / "ds")
    before = read_manifest(folder)
    worst = min(before["filter"]["per_class"].values(), key=lambda c: c["acceptance_rate"])["acceptance_rate"]
    assert worst < 1, "the fixture needs a class with a rejected draw"
    strict = FILTER_CFG.model_copy(update={"filter": FILTER_CFG.filter.model_copy(update={"min_acceptance": 1.0})})
    with pytest.raises(SynthgenError, match="below sample.filter.min_acceptance = 1.0"):
        refill_dataset(folder, FLAGGED, models, FILTER_CFG, SEED, 1, ("near_duplicate",),
                       screen_for(strict, filter_dir, models, CLASS_NAMES))
    assert read_manifest(folder) == before and verify_dataset(folder) == []
