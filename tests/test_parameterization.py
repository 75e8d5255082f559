"""eps / x0 / v conversions, training targets, Min-SNR weights and the diffusion loss."""
import itertools

import pytest
import torch

from synthgen.config.diffusion import DiffusionConfig
from synthgen.diffusion import DiffusionLoss, NoiseSchedule, convert, loss_weight, training_target
from synthgen.diffusion.losses import nearest_log_sigma, sample_timesteps
from synthgen.diffusion.parameterization import PREDICTION_TYPES, to_epsilon, to_x0

SCHEDULE = NoiseSchedule.linear(1000)


def noisy_batch(dtype=torch.float64, seed=0):
    """x0, eps, the timesteps, abar broadcastable to x, and x_t = sqrt(abar) x0 + sqrt(1 - abar) eps."""
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(6, 2, 3, 3, generator=g, dtype=dtype)
    eps = torch.randn(6, 2, 3, 3, generator=g, dtype=dtype)
    t = torch.tensor([0, 1, 100, 500, 900, 999])
    abar = SCHEDULE.at(SCHEDULE.alphas_cumprod, t, x0)
    return x0, eps, t, abar, SCHEDULE.q_sample(x0, t, eps)


def truth(x0, eps, abar):
    return {"epsilon": eps, "sample": x0, "v_prediction": abar.sqrt() * eps - (1 - abar).sqrt() * x0,
            "flow": eps - x0}


@pytest.mark.parametrize("source,target", list(itertools.product(PREDICTION_TYPES, repeat=2)))
def test_every_conversion_is_exact(source, target):
    x0, eps, _, abar, x_t = noisy_batch()
    values = truth(x0, eps, abar)
    torch.testing.assert_close(convert(values[source], x_t, abar, source, target), values[target])


@pytest.mark.parametrize("source,target", list(itertools.product(PREDICTION_TYPES, repeat=2)))
def test_round_trip_returns_the_prediction(source, target):
    x0, eps, _, abar, x_t = noisy_batch()
    prediction = torch.randn_like(x0)  # any prediction, not only the true one
    back = convert(convert(prediction, x_t, abar, source, target), x_t, abar, target, source)
    torch.testing.assert_close(back, prediction)


def test_float32_round_trip_is_close_away_from_the_ends():
    x0, eps, _, abar, x_t = noisy_batch(torch.float32)
    middle = slice(2, 5)  # t = 100, 500, 900: divisions by sqrt(abar) or sqrt(1 - abar) stay tame
    x0_hat = to_x0(eps, x_t, abar, "epsilon")
    torch.testing.assert_close(x0_hat[middle], x0[middle], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(to_epsilon(x0, x_t, abar, "sample")[middle], eps[middle], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("prediction_type", PREDICTION_TYPES)
def test_training_target_is_the_true_quantity(prediction_type):
    x0, eps, _, abar, _ = noisy_batch()
    torch.testing.assert_close(training_target(x0, eps, abar, prediction_type), truth(x0, eps, abar)[prediction_type])


def test_unknown_prediction_type_lists_the_allowed_names():
    x0, eps, _, abar, x_t = noisy_batch()
    with pytest.raises(ValueError, match="epsilon, v_prediction, sample"):
        convert(eps, x_t, abar, "score", "epsilon")


def test_min_snr_weights_are_one_objective_in_every_parameterisation():
    """w_type * ||type error||^2 equals w_eps * ||eps error||^2 for one and the same prediction error."""
    x0, eps, t, abar, x_t = noisy_batch()
    snr = SCHEDULE.snr(t)
    eps_hat = eps + 0.1 * torch.randn_like(eps)
    errors = {}
    for kind in PREDICTION_TYPES:
        prediction = convert(eps_hat, x_t, abar, "epsilon", kind)
        per_sample = (prediction - truth(x0, eps, abar)[kind]).square().flatten(1).sum(1)
        errors[kind] = loss_weight(snr, kind, "min_snr", gamma=5.0) * per_sample
    torch.testing.assert_close(errors["v_prediction"], errors["epsilon"])
    torch.testing.assert_close(errors["sample"], errors["epsilon"])
    torch.testing.assert_close(errors["flow"], errors["epsilon"])


def test_flow_is_the_velocity_of_the_straight_path_on_the_rectified_flow_schedule():
    """On `rectified_flow`, x_t / (a + s) = z_t = (1 - t) x0 + t eps with t = (k + 1) / T, and flow = dz_t / dt."""
    rf = NoiseSchedule.rectified_flow(1000)
    g = torch.Generator().manual_seed(4)
    x0, eps = torch.randn(5, 3, generator=g, dtype=torch.float64), torch.randn(5, 3, generator=g, dtype=torch.float64)
    k = torch.tensor([0, 99, 499, 900, 998])
    time = ((k + 1) / 1000).double()[:, None]
    abar = rf.at(rf.alphas_cumprod, k, x0)
    x_t = rf.q_sample(x0, k, eps)
    torch.testing.assert_close(x_t / (abar.sqrt() + (1 - abar).sqrt()), (1 - time) * x0 + time * eps)
    torch.testing.assert_close(to_x0(eps - x0, x_t, abar, "flow"), x0)
    torch.testing.assert_close(to_epsilon(eps - x0, x_t, abar, "flow"), eps)


def test_min_snr_weight_values():
    snr = torch.tensor([0.5, 5.0, 50.0], dtype=torch.float64)
    expected_eps, expected_x0 = snr.new_tensor([1.0, 1.0, 0.1]), snr.new_tensor([0.5, 5.0, 5.0])
    torch.testing.assert_close(loss_weight(snr, "epsilon", "min_snr", 5.0), expected_eps)
    torch.testing.assert_close(loss_weight(snr, "sample", "min_snr", 5.0), expected_x0)
    torch.testing.assert_close(loss_weight(snr, "v_prediction", "min_snr", 5.0), torch.clamp(snr, max=5) / (snr + 1))
    torch.testing.assert_close(loss_weight(snr, "flow", "min_snr", 5.0), torch.clamp(snr, max=5) / (snr.sqrt() + 1) ** 2)
    assert bool((loss_weight(snr, "sample", "uniform") == 1).all())
    with pytest.raises(ValueError, match="uniform, min_snr"):
        loss_weight(snr, "epsilon", "p2")


def oracle(x0_fixed, prediction_type):
    """A model that knows the data is the single point x0_fixed: it recovers eps, x0, v and flow exactly."""

    def model(x_t, t, labels):
        abar = SCHEDULE.at(SCHEDULE.alphas_cumprod, t, x_t)
        eps = (x_t - abar.sqrt() * x0_fixed) / (1 - abar).sqrt()
        return truth(x0_fixed.expand_as(x_t), eps, abar)[prediction_type]

    return model


@pytest.mark.parametrize("prediction_type", PREDICTION_TYPES)
@pytest.mark.parametrize("weighting", ["uniform", "min_snr"])
def test_loss_is_zero_for_the_exact_model(prediction_type, weighting):
    x0 = torch.full((8, 2, 4, 4), 0.3, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    loss = DiffusionLoss(SCHEDULE, prediction_type, weighting, 5.0)(oracle(x0[:1], prediction_type), x0, None, g)
    assert loss.ndim == 0 and loss.item() < 1e-12


def test_loss_of_a_zero_model_is_the_target_energy_and_reproducible():
    x0 = torch.zeros(512, 1, 4, 4)

    def zero_model(x_t, t, labels):
        assert t.dtype == torch.long and labels is None
        return torch.zeros_like(x_t)

    losses = [DiffusionLoss(SCHEDULE)(zero_model, x0, None, torch.Generator().manual_seed(5)) for _ in "ab"]
    assert losses[0].item() == losses[1].item()
    # E||eps||^2 per element is 1; 8192 draws give an SE of ~0.016
    assert losses[0].item() == pytest.approx(1.0, abs=0.08)


def test_loss_draws_timesteps_from_the_generator():
    seen = []

    def model(x_t, t, labels):
        seen.append(t)
        return torch.zeros_like(x_t)

    x0 = torch.zeros(64, 1, 2, 2)
    for seed in (1, 1, 2):
        DiffusionLoss(SCHEDULE)(model, x0, None, torch.Generator().manual_seed(seed))
    assert torch.equal(seen[0], seen[1]) and not torch.equal(seen[0], seen[2])
    assert 0 <= seen[0].min() and seen[0].max() <= 999


def test_uniform_timesteps_are_the_plain_randint_draws():
    drawn = sample_timesteps(256, SCHEDULE, torch.Generator().manual_seed(3), "cpu")
    assert torch.equal(drawn, torch.randint(0, 1000, (256,), generator=torch.Generator().manual_seed(3)))


def test_logit_normal_timesteps_concentrate_on_the_middle_and_shift_with_the_mean():
    """t/T = sigmoid(N(m, s^2)): the median is T * sigmoid(m), and |logit(t/T) - m| < s about 68% of the time."""
    draw = lambda mean, seed=0: sample_timesteps(20_000, SCHEDULE, torch.Generator().manual_seed(seed), "cpu",  # noqa: E731
                                                 "logit_normal", mean, 1.0)
    centred, noisier = draw(0.0), draw(1.0)
    assert centred.dtype == torch.long and 0 <= centred.min() and centred.max() <= 999
    assert torch.equal(centred, draw(0.0)) and not torch.equal(centred, draw(0.0, seed=1))
    assert centred.float().median().item() == pytest.approx(500, abs=10)
    assert noisier.float().median().item() == pytest.approx(1000 * torch.sigmoid(torch.tensor(1.0)).item(), abs=10)
    within_one_std = ((centred >= 269) & (centred <= 731)).float().mean().item()  # sigmoid(+-1) = 0.269, 0.731
    assert within_one_std == pytest.approx(0.683, abs=0.02)


def test_unknown_timestep_sampling_lists_the_allowed_names():
    with pytest.raises(ValueError, match="uniform, logit_normal, log_normal_sigma"):
        sample_timesteps(4, SCHEDULE, torch.Generator(), "cpu", "cosine")


def test_loss_is_built_from_the_diffusion_params():
    cfg = DiffusionConfig(prediction_type="sample", loss_weighting="uniform", min_snr_gamma=2.0,
                          timestep_sampling="logit_normal", timestep_logit_mean=0.5, timestep_logit_std=2.0)
    loss = DiffusionLoss.from_config(cfg, SCHEDULE)
    assert (loss.schedule, loss.prediction_type, loss.weighting, loss.gamma) == (SCHEDULE, "sample", "uniform", 2.0)
    assert (loss.timestep_sampling, loss.logit_mean, loss.logit_std) == ("logit_normal", 0.5, 2.0)
    assert DiffusionLoss.from_config(cfg).schedule.num_timesteps == cfg.schedule.num_timesteps


def test_log_normal_sigma_timesteps_have_the_edm_density_of_ln_sigma():
    """ln sigma_t of the drawn t has mean P_mean and std P_std (to the grid's resolution) on the cosine schedule."""
    cosine = NoiseSchedule.cosine(1000)
    drawn = sample_timesteps(20_000, cosine, torch.Generator().manual_seed(0), "cpu", "log_normal_sigma", -1.2, 1.2)
    log_sigma = cosine.sigmas[drawn].log()
    assert drawn.dtype == torch.long and 0 <= drawn.min() and drawn.max() <= 999
    assert log_sigma.mean().item() == pytest.approx(-1.2, abs=0.03)
    assert log_sigma.std().item() == pytest.approx(1.2, abs=0.03)


def test_nearest_log_sigma_picks_the_closest_grid_point_and_clamps_at_the_ends():
    grid = torch.tensor([0.0, 1.0, 3.0], dtype=torch.float64)
    queries = torch.tensor([-5.0, 0.4, 0.6, 1.9, 2.1, 9.0])
    assert nearest_log_sigma(queries, grid).tolist() == [0, 0, 1, 1, 2, 2]


def test_edm_weighting_is_uniform_on_v_targets():
    """Karras et al. 2022, Table 1: lambda(sigma) ||D - x0||^2 with lambda = (sigma^2 + 1) / sigma^2 (sigma_data = 1)
    and D = the x0 a v-prediction implies equals ||v - v^||^2, the `uniform` loss on v targets."""
    x0, eps, t, abar, x_t = noisy_batch()
    v_hat = truth(x0, eps, abar)["v_prediction"] + 0.1 * torch.randn_like(x0)
    sigma2 = SCHEDULE.sigmas[t] ** 2
    edm = (sigma2 + 1) / sigma2 * (to_x0(v_hat, x_t, abar, "v_prediction") - x0).square().flatten(1).sum(1)
    uniform = (v_hat - truth(x0, eps, abar)["v_prediction"]).square().flatten(1).sum(1)
    torch.testing.assert_close(edm, uniform * loss_weight(SCHEDULE.snr(t), "v_prediction", "uniform"))


def test_loss_takes_the_moments_of_the_chosen_density():
    cfg = DiffusionConfig(timestep_sampling="log_normal_sigma", timestep_log_sigma_mean=-0.8, timestep_log_sigma_std=1.0)
    assert DiffusionLoss.from_config(cfg, SCHEDULE).density_moments == (-0.8, 1.0)
    assert DiffusionLoss.from_config(DiffusionConfig(), SCHEDULE).density_moments == (0.0, 1.0)
