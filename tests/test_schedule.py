"""Properties of the noise schedules, the forward process and the sampling timestep grids."""
import math

import pytest
import torch

from synthgen.config.diffusion import ScheduleConfig
from synthgen.diffusion import NoiseSchedule, select_timesteps
from synthgen.diffusion.timesteps import sampling_grid

KINDS = {
    "linear": lambda: NoiseSchedule.linear(1000, 1e-4, 0.02),
    "scaled_linear": lambda: NoiseSchedule.scaled_linear(1000, 0.00085, 0.012),
    "cosine": lambda: NoiseSchedule.cosine(1000),
    "rectified_flow": lambda: NoiseSchedule.rectified_flow(1000),
}


@pytest.fixture(params=sorted(KINDS))
def schedule(request) -> NoiseSchedule:
    return KINDS[request.param]()


def test_betas_in_unit_interval_and_non_decreasing(schedule):
    betas = schedule.betas
    assert betas.dtype == torch.float64 and betas.shape == (1000,)
    assert bool((betas > 0).all()) and bool((betas <= 0.999).all())
    assert bool((betas[1:] >= betas[:-1]).all())


def test_alphas_cumprod_strictly_decreasing_in_unit_interval(schedule):
    abar = schedule.alphas_cumprod
    assert bool((abar > 0).all()) and bool((abar < 1).all())
    assert bool((abar[1:] < abar[:-1]).all())
    assert abar[0].item() == pytest.approx(1 - schedule.betas[0].item(), rel=1e-12)
    assert schedule.alphas_cumprod_prev[0].item() == 1.0


def test_snr_decreasing_and_matches_definition(schedule):
    t = torch.arange(1000)
    snr = schedule.snr(t)
    abar = schedule.alphas_cumprod
    torch.testing.assert_close(snr, abar / (1 - abar))
    assert bool((snr[1:] < snr[:-1]).all())
    torch.testing.assert_close(schedule.sigmas**2, 1 / snr)


def test_linear_endpoints_and_spacing():
    s = NoiseSchedule.linear(1000, 1e-4, 0.02)
    assert s.betas[0].item() == pytest.approx(1e-4) and s.betas[-1].item() == pytest.approx(0.02)
    torch.testing.assert_close(s.betas.diff(), torch.full((999,), (0.02 - 1e-4) / 999, dtype=torch.float64))


def test_scaled_linear_is_linear_in_sqrt_beta():
    s = NoiseSchedule.scaled_linear(1000, 0.00085, 0.012)
    root = s.betas.sqrt()
    assert root[0].item() == pytest.approx(0.00085**0.5) and root[-1].item() == pytest.approx(0.012**0.5)
    torch.testing.assert_close(root.diff(), root.diff().mean().expand(999))


def test_cosine_matches_closed_form_until_clipping():
    s = NoiseSchedule.cosine(1000, s=0.008)
    u = torch.arange(1, 1001, dtype=torch.float64) / 1000
    f = torch.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2 / math.cos(0.008 / 1.008 * math.pi / 2) ** 2
    unclipped = s.betas < 0.999
    assert unclipped[:990].all() and s.betas[-1].item() == 0.999
    torch.testing.assert_close(s.alphas_cumprod[unclipped], f[unclipped])


def test_rectified_flow_matches_the_straight_path_marginal_until_clipping():
    """abar = (1 - t)^2 / ((1 - t)^2 + t^2) at t = (k + 1) / T: x_t / sqrt(abar) has the noise level t / (1 - t)."""
    s = NoiseSchedule.rectified_flow(1000)
    t = torch.arange(1, 1001, dtype=torch.float64) / 1000
    torch.testing.assert_close(s.alphas_cumprod[:-1], ((1 - t) ** 2 / ((1 - t) ** 2 + t**2))[:-1])
    torch.testing.assert_close(s.sigmas[:-1], (t / (1 - t))[:-1])
    assert s.betas[-1].item() == 0.999 and (s.betas[:-1] < 0.999).all()  # abar(1) = 0, clipped as the cosine's


def test_from_config_builds_each_kind():
    assert torch.equal(NoiseSchedule.from_config(ScheduleConfig(kind="linear")).betas, NoiseSchedule.linear().betas)
    cosine = NoiseSchedule.from_config(ScheduleConfig(kind="cosine", num_timesteps=50))
    assert torch.equal(cosine.betas, NoiseSchedule.cosine(50).betas)
    scaled = ScheduleConfig(kind="scaled_linear", beta_start=0.00085, beta_end=0.012)
    assert torch.equal(NoiseSchedule.from_config(scaled).betas, NoiseSchedule.scaled_linear().betas)
    rf = NoiseSchedule.from_config(ScheduleConfig(kind="rectified_flow", num_timesteps=50))
    assert torch.equal(rf.betas, NoiseSchedule.rectified_flow(50).betas)


def test_rejects_betas_outside_unit_interval():
    with pytest.raises(ValueError, match="every beta"):
        NoiseSchedule(torch.tensor([0.1, 1.0]))


def test_q_sample_has_the_marginal_moments(schedule):
    g = torch.Generator().manual_seed(0)
    x0 = torch.full((20000, 1), 0.7)
    t = torch.full((20000,), 300)
    x_t = schedule.q_sample(x0, t, torch.randn(x0.shape, generator=g))
    abar = schedule.alphas_cumprod[300].item()
    # 20k draws: SE of the mean ~ 0.007, of the std ~ 0.005; 0.03 is > 4 SE
    assert x_t.mean().item() == pytest.approx(math.sqrt(abar) * 0.7, abs=0.03)
    assert x_t.std().item() == pytest.approx(math.sqrt(1 - abar), abs=0.03)


def test_posterior_is_gaussian_conditioning_of_the_forward_joint(schedule):
    """q(x_{t-1} | x_t, x0) from conditioning the jointly Gaussian (x_{t-1}, x_t) given x0 (Ho et al. eqs. 6-7)."""
    g = torch.Generator().manual_seed(1)
    t = torch.tensor([1, 10, 500, 999])
    x0, x_t = torch.randn(4, 3, generator=g, dtype=torch.float64), torch.randn(4, 3, generator=g, dtype=torch.float64)
    mean, var = schedule.posterior_mean_variance(x0, x_t, t)
    abar_prev, alpha = schedule.alphas_cumprod_prev[t, None], schedule.alphas[t, None]
    abar = schedule.alphas_cumprod[t, None]
    m_prev, m_t = abar_prev.sqrt() * x0, abar.sqrt() * x0
    cov = alpha.sqrt() * (1 - abar_prev)  # Cov(x_{t-1}, x_t | x0)
    torch.testing.assert_close(mean, m_prev + cov / (1 - abar) * (x_t - m_t))
    torch.testing.assert_close(var, (1 - abar_prev) - cov**2 / (1 - abar))


def test_posterior_at_first_step_is_exact_x0(schedule):
    x0, x_t = torch.randn(2, 4, 2, 2), torch.randn(2, 4, 2, 2)
    mean, var = schedule.posterior_mean_variance(x0, x_t, torch.zeros(2, dtype=torch.long))
    assert var.shape == (2, 1, 1, 1) and bool((var == 0).all())
    torch.testing.assert_close(mean, x0)


def test_to_keeps_float64_and_values(schedule):
    moved = schedule.to("cpu")
    assert moved.betas.dtype == torch.float64 and torch.equal(moved.betas, schedule.betas)


# -- timestep grids: Lin et al. 2023, Table 2 (T = 1000, 10 steps; the paper counts from 1) --

LIN_TABLE_2 = {
    "linspace": [1, 112, 223, 334, 445, 556, 667, 778, 889, 1000],
    "leading": [1, 101, 201, 301, 401, 501, 601, 701, 801, 901],
    "trailing": [100, 200, 300, 400, 500, 600, 700, 800, 900, 1000],
}


@pytest.mark.parametrize("spacing", sorted(LIN_TABLE_2))
def test_spacing_matches_lin_et_al_table_2(spacing):
    expected = [k - 1 for k in reversed(LIN_TABLE_2[spacing])]
    assert select_timesteps(1000, 10, spacing).tolist() == expected


@pytest.mark.parametrize("spacing", sorted(LIN_TABLE_2))
@pytest.mark.parametrize("steps", [1, 3, 7, 16, 30, 999, 1000])
def test_spacing_gives_distinct_descending_training_timesteps(spacing, steps):
    t = select_timesteps(1000, steps, spacing)
    assert t.dtype == torch.long and t.shape == (steps,)
    assert bool((t[:-1] > t[1:]).all()) and 0 <= t.min() and t.max() <= 999


def test_spacing_edge_cases_match_diffusers_formulas():
    assert select_timesteps(1000, 3, "linspace").tolist() == [999, 500, 0]  # round-half-even of 499.5
    assert select_timesteps(1000, 3, "leading").tolist() == [666, 333, 0]
    assert select_timesteps(1000, 3, "trailing").tolist() == [999, 666, 332]
    assert select_timesteps(1000, 1000, "trailing").tolist() == list(range(999, -1, -1))


def test_spacing_rejects_bad_input():
    with pytest.raises(ValueError, match="leading, trailing, linspace"):
        select_timesteps(1000, 10, "uniform")
    with pytest.raises(ValueError, match=r"\[1, 1000\]"):
        select_timesteps(1000, 1001, "leading")


def test_sampling_grid_ends_at_clean_data(schedule):
    grid = sampling_grid(schedule, 5, "trailing")
    assert len(grid) == 5 and grid.alphas_cumprod[-1] == 1.0
    assert list(grid.alphas_cumprod[:-1]) == schedule.alphas_cumprod[list(grid.timesteps)].tolist()
