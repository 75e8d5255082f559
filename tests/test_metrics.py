"""Distance and fidelity metrics on constructed point clouds with known answers."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from synthgen.metrics import (
    GaussianStats, cas_ratio, conditional_accuracy, flatten_pixels, frechet_distance, frechet_distance_from_stats,
    k_nearest, kernel_inception_distance, memorisation, precision_recall,
)
from synthgen.metrics.inception import InceptionWeightsMissing, inception_features, load_inception


pytestmark = pytest.mark.usefixtures("one_thread")


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_rotation(d: int, seed: int) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=gen(seed), dtype=torch.float64))
    return q


# --- Fréchet distance -------------------------------------------------------------------------


def test_frechet_matches_closed_form_for_commuting_covariances():
    # Same eigenvectors R: FD = |mu_a - mu_b|^2 + sum (sqrt(a_i) - sqrt(b_i))^2.
    d = 6
    a, b = torch.tensor([1.0, 2, 3, 4, 5, 6], dtype=torch.float64), torch.tensor([6.0, 1, 0.5, 4, 9, 0.1], dtype=torch.float64)
    mu_a, mu_b = torch.zeros(d, dtype=torch.float64), torch.arange(d, dtype=torch.float64)
    expected = (mu_a - mu_b).square().sum() + (a.sqrt() - b.sqrt()).square().sum()
    for rotation in (torch.eye(d, dtype=torch.float64), random_rotation(d, 0)):
        cov_a, cov_b = rotation @ torch.diag(a) @ rotation.T, rotation @ torch.diag(b) @ rotation.T
        fd = frechet_distance_from_stats(GaussianStats(mu_a, cov_a, 2), GaussianStats(mu_b, cov_b, 2))
        assert fd == pytest.approx(expected.item(), rel=1e-9)


def test_frechet_matches_scipy_sqrtm_for_general_covariances():
    scipy_linalg = pytest.importorskip("scipy.linalg")
    x = torch.randn(300, 8, generator=gen(1), dtype=torch.float64)
    y = torch.randn(300, 8, generator=gen(2), dtype=torch.float64) @ torch.randn(8, 8, generator=gen(3), dtype=torch.float64)
    cx, cy = np.cov(x.numpy().T), np.cov(y.numpy().T)
    reference = (np.sum((x.numpy().mean(0) - y.numpy().mean(0)) ** 2)
                 + np.trace(cx) + np.trace(cy) - 2 * np.trace(scipy_linalg.sqrtm(cx @ cy).real))
    assert frechet_distance(x, y) == pytest.approx(reference, rel=1e-7)


def test_frechet_of_a_set_with_itself_is_zero():
    x = torch.randn(500, 64, generator=gen(4)) * 3 + 1
    assert frechet_distance(x, x) < 1e-6 * 9 * 64  # relative to the total variance


def test_frechet_is_finite_and_non_negative_with_singular_covariances():
    x, y = torch.randn(10, 32, generator=gen(5)), torch.randn(10, 32, generator=gen(6))  # N < D: rank-deficient
    fd = frechet_distance(x.numpy(), y.numpy())
    assert np.isfinite(fd) and fd >= 0


# --- KID ----------------------------------------------------------------------------------------


def test_kid_is_zero_in_expectation_for_one_distribution_and_positive_for_a_shift():
    a, b = torch.randn(1000, 16, generator=gen(7)), torch.randn(1000, 16, generator=gen(8))
    same = kernel_inception_distance(a, b, num_subsets=50, subset_size=200, generator=gen(9))
    # Under H0 the unbiased estimator has mean 0. The subset average estimates it with standard error
    # about std * sqrt(1/subsets + (subset_size/N)^2) ~= 0.25 std here (subsets overlap; a degenerate
    # U-statistic's spread shrinks like 1/n; measured 0.19 std over 30 draws), so |mean| <= std is a
    # 4-5 standard-error tolerance.
    assert abs(same.mean) <= same.std
    shifted = kernel_inception_distance(a, b + 0.5, num_subsets=50, subset_size=200, generator=gen(9))
    assert shifted.mean > 10 * same.std


def test_kid_is_reproducible_from_the_generator_and_caps_the_subset_size():
    a, b = torch.randn(40, 4, generator=gen(10)), torch.randn(30, 4, generator=gen(11))
    first = kernel_inception_distance(a, b, 5, 1000, gen(12))
    assert first == kernel_inception_distance(a, b, 5, 1000, gen(12))
    assert first.subset_size == 30


# --- precision / recall and k-NN --------------------------------------------------------------


def test_k_nearest_chunked_equals_brute_force():
    q, r = torch.randn(37, 5, generator=gen(13)), torch.randn(53, 5, generator=gen(14))
    d, i = k_nearest(q, r, k=4, chunk_size=8)
    ref_d, ref_i = torch.cdist(q, r).topk(4, dim=1, largest=False)
    torch.testing.assert_close(d, ref_d)
    assert torch.equal(i, ref_i)


def test_k_nearest_gives_an_exact_copy_distance_zero_in_many_dimensions():
    reference = torch.rand(300, 3072, generator=gen(27)) * 2 - 1
    query = torch.cat([reference[[42]], torch.rand(3, 3072, generator=gen(28)) * 2 - 1])
    distances, indices = k_nearest(query, reference, k=2, chunk_size=64)
    assert indices[0, 0] == 42 and distances[0, 0] == 0
    assert torch.all(distances[:, :1] <= distances[:, 1:])
    torch.testing.assert_close(distances[1:], torch.cdist(query[1:].double(), reference.double()).sort(dim=1).values[:, :2].float())


def test_precision_recall_of_disjoint_clouds_is_zero():
    real, fake = torch.randn(200, 8, generator=gen(15)), torch.randn(200, 8, generator=gen(16)) + 100
    pr = precision_recall(real, fake, k=3)
    assert (pr.precision, pr.recall) == (0.0, 0.0)


def test_precision_recall_of_identical_sets_is_one():
    real = torch.randn(200, 8, generator=gen(17))
    pr = precision_recall(real, real.clone(), k=3, chunk_size=64)
    assert (pr.precision, pr.recall) == (1.0, 1.0)


def test_generating_one_of_two_modes_keeps_precision_and_halves_recall():
    cluster_a = torch.randn(300, 4, generator=gen(18))
    cluster_b = torch.randn(300, 4, generator=gen(19)) + 50
    fake = torch.randn(300, 4, generator=gen(20))  # fresh samples of mode A only
    pr = precision_recall(torch.cat([cluster_a, cluster_b]), fake, k=3, chunk_size=100)
    assert pr.precision > 0.9
    assert 0.4 < pr.recall < 0.55


def test_precision_recall_does_not_depend_on_chunk_size():
    real, fake = torch.randn(90, 3, generator=gen(21)), torch.randn(70, 3, generator=gen(22)) * 1.5
    assert precision_recall(real, fake, 3, chunk_size=7) == precision_recall(real, fake, 3, chunk_size=1024)


# --- conditional accuracy and CAS ---------------------------------------------------------------


def test_conditional_accuracy_overall_and_per_class():
    requested = torch.tensor([0, 0, 0, 0, 1, 1, 3])
    predicted = torch.tensor([0, 0, 0, 2, 0, 1, 3])
    acc = conditional_accuracy(predicted, requested, num_classes=4)
    assert acc.overall == pytest.approx(5 / 7)
    assert acc.per_class == [0.75, 0.5, None, 1.0]
    assert acc.counts == [4, 2, 0, 1]


def test_cas_ratio():
    assert cas_ratio(0.45, 0.9) == pytest.approx(0.5)
    with pytest.raises(AssertionError):
        cas_ratio(0.5, 0.0)


def test_cas_over_runs_is_the_ratio_of_the_means_with_each_sides_sample_spread():
    from synthgen.evaluation.scores import cas_metrics

    reference = {"cas_reference_accuracy": 0.9, "cas_reference_accuracy_std": 0.01, "cas_reference_train_count": 50}
    metrics = cas_metrics([0.7, 0.8, 0.9], 40, reference)
    assert metrics["cas_accuracy"] == pytest.approx(0.8) and metrics["cas_ratio"] == pytest.approx(0.8 / 0.9)
    assert metrics["cas_accuracy_std"] == pytest.approx(0.1)  # sample std (n - 1), as the FD's over subsets
    assert (metrics["cas_runs"], metrics["cas_accuracy_baseline_std"], metrics["cas_train_count"]) == (3, 0.01, 40)
    assert cas_metrics([0.7], 40, reference)["cas_accuracy_std"] == 0.0


# --- memorisation -------------------------------------------------------------------------------


def planted_copy_sets(shape: tuple[int, ...]):
    train = torch.rand(200, *shape, generator=gen(23)) * 2 - 1
    val = torch.rand(1000, *shape, generator=gen(24)) * 2 - 1
    generated = torch.rand(50, *shape, generator=gen(25)) * 2 - 1
    generated[10] = train[17]  # the planted copy
    return train, val, generated


@pytest.mark.parametrize("shape", [(32,), (3, 8, 8)])
def test_memorisation_flags_a_planted_copy_and_not_fresh_samples(shape):
    train, val, generated = planted_copy_sets(shape)
    flat = flatten_pixels if len(shape) > 1 else (lambda x: x)
    memo = memorisation(flat(generated), flat(train), flat(val), quantile=0.002, chunk_size=64)
    assert memo.near_duplicate[10] and memo.indices[10] == 17
    assert memo.distances[10] < 1e-2 < memo.threshold
    # Fresh samples are flagged at about the quantile's rate (0.2%): none of these 49 is expected to be.
    assert memo.near_duplicate.sum() == 1
    assert memo.near_duplicate_fraction == pytest.approx(1 / 50)
    assert (memo.real_distances <= memo.threshold).float().mean() == pytest.approx(0.002, abs=0.0015)


# --- Inception (optional) -----------------------------------------------------------------------


def test_missing_inception_weights_give_one_clear_line(tmp_path):
    with pytest.raises(InceptionWeightsMissing) as err:
        load_inception(tmp_path / "inception-2015-12-05.pt")
    assert "inception-2015-12-05.pt" in str(err.value) and "\n" not in str(err.value)
    (tmp_path / "corrupt.pt").write_bytes(b"not torchscript")
    with pytest.raises(InceptionWeightsMissing, match="not a loadable TorchScript"):
        load_inception(tmp_path / "corrupt.pt")


class StandInInception(torch.nn.Module):
    """Mimics the TorchScript Inception call: uint8 (N, 3, H, W) in, features out; reports the size it saw."""

    def forward(self, img: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        assert img.dtype == torch.uint8
        x = img.float()
        size = torch.full((img.shape[0], 1), float(img.shape[2]))
        return torch.cat([x.mean(dim=(2, 3)), size], dim=1)


def test_inception_features_resize_uint8_images_to_299(tmp_path):
    torch.jit.save(torch.jit.script(StandInInception()), str(tmp_path / "standin.pt"))
    model = load_inception(tmp_path / "standin.pt")
    pixels = torch.randint(0, 256, (5, 16, 16, 3), generator=gen(26), dtype=torch.uint8)
    feats = inception_features(model, pixels.numpy(), batch_size=2)
    assert feats.shape == (5, 4) and feats.dtype == torch.float32
    assert torch.all(feats[:, 3] == 299)
    torch.testing.assert_close(feats[:, :3], pixels.float().mean(dim=(1, 2)), atol=2.0, rtol=0)
