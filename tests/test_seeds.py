"""synthgen/seeds.py: every purpose reproduces the seed its stream had before the table existed, and no two
purposes share a seed except the documented legacy pairs."""
import itertools

import pytest

from synthgen.seeds import PURPOSES, derive_seed

ROOTS = (0, 7, 123456789)
# (purpose, indices) -> the seeds for ROOTS, computed at 797f8a9 with the functions this table replaced:
# training.rng.derive_seed(root, key, *indices), generate.plan.sample_seed, releases.ids.release_seed,
# generate.shard_sampler.stream_seed, and the sweep's raw seed and seed + 1.
LEGACY = {
    ("train/batch_order", (3,)): (5276725955892761082, 7964965305340474863, 1087343580838460832),
    ("train/objective_noise", (1,)): (7203126130259618810, 6442943914433913233, 1245619297181101559),
    ("train/torch_default", (1,)): (2122545592250308646, 6665335680343557524, 3126142918896747237),
    ("autoencoder/scale_factor", ()): (1185441883537222340, 2228000872240873687, 6178863448191140768),
    ("autoencoder/init", ()): (6271193188109598843, 1675924118567112116, 440533040288944214),
    ("autoencoder/eval", ()): (1567762815059175855, 7498092397237277296, 4717617631829580585),
    ("diffusion/init", ()): (6000669116776255390, 3388364812327219141, 7477497858954267),
    ("diffusion/preview_x_T", ()): (1998827769305828864, 3781512722501830028, 5044533926012097367),
    ("diffusion/preview_sampler", ()): (5716700189236815945, 8618172084008794462, 9194976221154140411),
    ("diffusion/latent_stats", ()): (3120876124021731798, 5723318965508642538, 6954395229463756375),
    ("diffusion/eval", ()): (1329467535667179701, 3908723985766769237, 5677869792492897846),
    ("diffusion/eval_loss_noise", (64,)): (64, 64, 64),
    ("classifier/init", ()): (6000669116776255390, 3388364812327219141, 7477497858954267),
    ("classifier/cas_real_subset", ()): (1998827769305828864, 3781512722501830028, 5044533926012097367),
    ("evaluate/measured_subset", ()): (6423006739732124084, 4161428984650264320, 7679801646826930750),
    ("evaluate/kid_subsets", ()): (2356463421547926373, 8524729732176920227, 7623103338422901046),
    ("evaluate/kid_baseline_subsets", ()): (1384488675294234, 675266754174581437, 2832020664953009544),
    ("evaluate/equal_size_subsets", ()): (6138692389045066800, 1301335820963485735, 7137348328365590110),
    ("evaluate/cas_subset", ()): (7754818368098236060, 1717918372152969541, 5640077034889114359),
    ("evaluate/equal_size_val", ()): (2855352955812696259, 1059153797519555665, 7199705282951173316),
    ("sweep/x_T", ()): (0, 7, 123456789),
    ("sweep/sampler_noise", ()): (1, 8, 123456790),
    ("sweep/fd_reference", ()): (0, 7, 123456789),
    ("sample/seed", (41,)): (1585274931396915698, 118946287725415550, 9028297107196073170),
    ("sample/x_T", ()): (0, 14, 246913578),
    ("sample/sampler_noise", ()): (1, 15, 246913579),
    ("release/seed", ("2026-11-21",)): (7726073539771753988, 5670132337363254168, 2673393756915877794),
    # added after the table: their first values
    ("reader/shard_order", (2,)): (9032687881165099841, 2586028044493852411, 6141740521407549651),
    ("reader/sample_buffer", (2, 1, 3)): (1723419290002077111, 7717897610661049508, 4341750577060743777),
    ("evaluate/utility_real_subset", ()): (7134259363120755950, 7044811124528687411, 3298675285242518408),
    ("sample/attempt", (2,)): (2045099694659347121, 5170842723456521367, 4555033859481295956),
}
# purposes that inherited one derivation from hand-numbered streams: equal seeds for equal roots
LEGACY_SHARED = {
    frozenset({"diffusion/init", "classifier/init"}),  # both were INIT_STREAM = 21
    frozenset({"diffusion/preview_x_T", "classifier/cas_real_subset"}),  # keys (22, 0) and (22,) hash alike
    frozenset({"sweep/x_T", "sweep/fd_reference"}),  # both used the sweep's seed as it is
}


def test_every_purpose_has_its_legacy_values():
    assert {purpose for purpose, _ in LEGACY} == set(PURPOSES)


@pytest.mark.parametrize("purpose,indices", list(LEGACY), ids=lambda v: str(v))
def test_each_purpose_reproduces_its_legacy_seed(purpose, indices):
    assert tuple(derive_seed(root, purpose, *indices) for root in ROOTS) == LEGACY[purpose, indices]


@pytest.mark.parametrize("root", [3, 2**40 + 5])
def test_no_two_purposes_collide_but_the_documented_legacy_pairs(root):
    seeds = {purpose: derive_seed(root, purpose, *indices) for purpose, indices in LEGACY}
    shared = {frozenset({a, b}) for a, b in itertools.combinations(seeds, 2) if seeds[a] == seeds[b]}
    assert shared == LEGACY_SHARED
    assert all(0 <= seed < 2**63 for seed in seeds.values())


def test_indices_select_distinct_streams_and_are_checked():
    assert len({derive_seed(0, "sample/seed", index) for index in range(1000)}) == 1000
    assert derive_seed(0, "train/batch_order", 1) != derive_seed(0, "train/batch_order", 2)
    with pytest.raises(ValueError, match=r"takes indices \(epoch\)"):
        derive_seed(0, "train/batch_order")
    with pytest.raises(ValueError, match="unknown seed purpose 'autoencoder/dropout'"):
        derive_seed(0, "autoencoder/dropout")


def test_a_samples_first_draw_keeps_its_own_seed_and_each_redraw_gets_a_new_one():
    seed = derive_seed(0, "sample/seed", 41)
    draws = [derive_seed(seed, "sample/attempt", attempt) for attempt in range(16)]
    assert draws[0] == seed  # a dataset sampled without a filter keeps its bytes
    assert len(set(draws)) == 16
