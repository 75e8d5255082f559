"""Verify on read (issue 15, case 4): a damaged shard is one clear ShardStoreError naming it, never
a silently wrong label, silently lost samples or a raw KeyError."""
import tarfile

import pytest

from synthgen.shards import ShardStoreError, open_dataset
from synthgen.storage import Store
from tests.test_shards import write_dataset

SHARD = "train-000000.tar"


def member(folder, name) -> tarfile.TarInfo:
    with tarfile.open(folder / SHARD) as tar:
        return tar.getmember(name)


def flip_label(folder) -> None:
    """Overwrite the one-digit label of img-0001 (1) with 2: same size, a wrong class."""
    with open(folder / SHARD, "r+b") as f:
        f.seek(member(folder, "img-0001.cls").offset_data)
        f.write(b"2")


def cut_at_member_boundary(folder) -> None:
    with open(folder / SHARD, "r+b") as f:
        f.truncate(member(folder, "img-0002.png").offset)


def cut_mid_member(folder) -> None:
    with open(folder / SHARD, "r+b") as f:
        f.truncate(member(folder, "img-0001.png").offset_data + 10)


DAMAGE = {"flipped label": flip_label, "member-boundary cut": cut_at_member_boundary, "mid-member cut": cut_mid_member}


@pytest.fixture
def dataset(tmp_path):
    write_dataset(tmp_path, n=6, max_count=3)
    return tmp_path


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_shard_is_refused_by_name(dataset, damage):
    DAMAGE[damage](dataset)
    with pytest.raises(ShardStoreError, match=rf"^{SHARD} in .*(sha256|bytes, manifest.json lists)") as err:
        list(open_dataset(dataset))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("damage", DAMAGE)
def test_without_verify_damage_is_still_a_clear_error(dataset, damage):
    DAMAGE[damage](dataset)
    with pytest.raises(ShardStoreError, match=rf"^{SHARD} in .*(label 2 in its .cls|ends before|not a whole tar)"):
        list(open_dataset(dataset, verify=False))


def test_the_check_runs_where_the_shard_is_opened(dataset):
    cut_mid_member(dataset)
    second = open_dataset(dataset, rank=1, world_size=2)  # reads train-000001.tar only
    assert [s["key"] for s in second] == ["img-0003", "img-0004", "img-0005"]


def test_each_shard_is_hashed_once_per_process(dataset, monkeypatch):
    hashed = []
    real = Store.sha256
    monkeypatch.setattr(Store, "sha256", lambda store, name: hashed.append(name) or real(store, name))
    ds = open_dataset(dataset, shuffle=True)
    for epoch in range(3):
        ds.set_epoch(epoch)
        assert len(list(ds)) == 6
    assert sorted(name.rsplit("/", 1)[-1] for name in hashed) == ["metadata.parquet", SHARD, "train-000001.tar"]


def test_a_missing_shard_is_named(dataset):
    (dataset / "train-000001.tar").unlink()
    with pytest.raises(ShardStoreError, match="train-000001.tar in .* is listed in manifest.json but missing"):
        list(open_dataset(dataset))
