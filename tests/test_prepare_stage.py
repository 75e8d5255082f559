"""The prepare stage end to end: as a Prefect flow, and as a DVC stage."""
import json

import polars as pl
import pytest

from synthgen.config import load_params
from tests.dvc_repo import make_dvc_repo, run

TINY = "data:\n  source: shapes\n  resolution: 16\n  num_images: 60\n  images_per_shard: 20\n"


def test_prepare_flow_writes_shards_and_resolved_params(tmp_path, prefect_harness):
    from flows.prepare import prepare

    params = tmp_path / "params.yaml"
    params.write_text(TINY)
    out = tmp_path / "prepared"
    summary = prepare(load_params(params, ["data.val_fraction=0.2"]), out=str(out))
    assert summary["seen"] == 60 and sum(summary["written"].values()) == 60
    train = pl.read_parquet(out / "train" / "metadata.parquet")
    assert train.height == summary["written"]["train"]
    assert json.loads((out / "params.json").read_text())["data"]["val_fraction"] == 0.2


@pytest.mark.slow
def test_dvc_repro_prepare_then_nothing_to_do(tmp_path):
    repo = make_dvc_repo(tmp_path / "repo", TINY)
    run(["dvc", "repro", "prepare"], repo)
    assert (repo / "dvc.lock").is_file()
    assert (repo / "data/prepared/train/manifest.json").is_file()
    second = run(["dvc", "repro", "prepare"], repo)
    assert "didn't change" in second.stdout or "up to date" in second.stdout
    status = run(["dvc", "status", "prepare"], repo)
    assert "up to date" in status.stdout
