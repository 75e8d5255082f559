"""The sampling plan: exact class quotas per shard, per-sample seeds, purity."""
import numpy as np
import pytest

from synthgen.generate.plan import SamplingPlan, apportion, class_counts_for, interleave
from synthgen.seeds import derive_seed

CLASSES = [f"c{i}" for i in range(5)]


def test_uniform_mix_splits_counts_by_largest_remainder():
    assert class_counts_for(12, CLASSES, "uniform") == [3, 3, 2, 2, 2]
    assert sum(class_counts_for(1001, CLASSES, "uniform")) == 1001


def test_weights_and_counts_mixes():
    assert class_counts_for(100, CLASSES, "weights", weights={"c0": 3, "c4": 1}) == [75, 0, 0, 0, 25]
    assert class_counts_for(7, CLASSES, "counts", counts={"c1": 5, "c2": 2}) == [0, 5, 2, 0, 0]
    with pytest.raises(ValueError, match="unknown classes"):
        class_counts_for(7, CLASSES, "counts", counts={"dog": 7})


@pytest.mark.parametrize("counts,per_shard", [((84, 84, 83, 83), 25), ((30, 60, 210), 64), ((1, 0, 9), 3)])
def test_every_shard_holds_each_class_share_up_to_rounding(counts, per_shard):
    plan = SamplingPlan(counts, per_shard, seed=0)
    total = np.zeros(len(counts), int)
    for shard in plan.shards():
        got = np.bincount(shard.labels, minlength=len(counts))
        expected = np.asarray(counts) * len(shard.labels) / plan.num_images
        assert np.all(np.abs(got - expected) < 2), (got, expected)
        total += got
    assert total.tolist() == list(counts)


def test_seeds_depend_only_on_run_seed_and_index():
    a, b = SamplingPlan((10, 10), 7, seed=3), SamplingPlan((10, 10), 4, seed=3)
    seeds_a = [s for sh in a.shards() for s in sh.seeds]
    seeds_b = [s for sh in b.shards() for s in sh.seeds]
    assert seeds_a == seeds_b and len(set(seeds_a)) == 20
    assert derive_seed(3, "sample/seed", 5) != derive_seed(4, "sample/seed", 5)
    assert SamplingPlan((10, 10), 7, seed=4).shard(0).seeds != a.shard(0).seeds


def test_shards_cover_every_index_once_with_stable_keys():
    plan = SamplingPlan((5, 6), 4, seed=0)
    indices = np.concatenate([s.sample_indices for s in plan.shards()])
    assert indices.tolist() == list(range(11))
    assert plan.shard(2).keys("synthetic") == ["synthetic-000000008", "synthetic-000000009", "synthetic-000000010"]
    with pytest.raises(IndexError):
        plan.shard(3)


def test_apportion_and_interleave_properties():
    assert apportion(10, np.array([1.0, 1.0, 1.0])).tolist() == [4, 3, 3]
    seq = interleave(np.array([2, 4]))
    assert np.bincount(seq).tolist() == [2, 4] and len(seq) == 6
