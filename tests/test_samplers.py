"""Every sampler against the exact denoiser of Gaussian data, plus determinism, reproducibility and the API."""
import math
from typing import get_args

import pytest
import torch

from synthgen.config.diffusion import SamplerConfig, SamplerSettings
from synthgen.config.evaluate import SweepConfig
from synthgen.diffusion import SAMPLERS, NoiseSchedule, convert, sample, sample_with_config
from synthgen.diffusion.adapter import eps_fn_from_model
from synthgen.diffusion.guidance import Guidance
from synthgen.diffusion.noise import SampleGenerators
from synthgen.diffusion.samplers.ddim import ddim_sigma, ddim_step
from synthgen.diffusion.samplers.ddpm import ddpm_step
from synthgen.diffusion.samplers.predictor_corrector import langevin_correct
from synthgen.diffusion.timesteps import sampling_grid

MU, S = 0.5, 0.3  # data x0 ~ N(MU, S^2) per element; S < 1 so a wrong variance path shows
LINEAR = NoiseSchedule.linear(1000, 1e-4, 0.02)


pytestmark = pytest.mark.usefixtures("one_thread")


def gaussian_eps_fn(schedule: NoiseSchedule, calls: list | None = None):
    """E[eps | x_t] for x0 ~ N(MU, S^2): sqrt(1 - abar) (x_t - sqrt(abar) MU) / (abar S^2 + 1 - abar)."""
    abar_table = schedule.alphas_cumprod

    def eps_fn(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if calls is not None:
            calls.append(t.clone())
        abar = abar_table[t].to(x_t.dtype).reshape(-1, *([1] * (x_t.ndim - 1)))
        return (1 - abar).sqrt() * (x_t - abar.sqrt() * MU) / (abar * S**2 + 1 - abar)

    return eps_fn


def exact_flow(x_T: torch.Tensor, abar_start: float) -> torch.Tensor:
    """The probability-flow ODE's exact map for Gaussian data: x0 = MU + (x_T / a - MU) S / sqrt(S^2 + sigma^2)."""
    sigma2 = (1 - abar_start) / abar_start
    return MU + (x_T / math.sqrt(abar_start) - MU) * S / math.sqrt(S**2 + sigma2)


SAMPLE_SHAPES = {16: (1, 4, 4), 64: (4, 4, 4), 256: (4, 8, 8)}  # dimensions per sample -> its shape


def noise(seed: int = 0, n: int = 1024, dtype=torch.float32, dims: int = 64):
    return torch.randn(n, *SAMPLE_SHAPES[dims], generator=torch.Generator().manual_seed(seed), dtype=dtype)


# (sampler, steps, options, std tolerance). Sample: 65,536 i.i.d. elements (16, 64 or 256 per sample), so
# SE(mean) = S / sqrt(n) = 0.0012 and SE(std) = S / sqrt(2n) = 0.0008. Each sampler also has its own
# discretisation bias at a finite step count (fixed_small DDPM's variance is a lower bound, the last
# step jumps from the smallest visited noise level, PC's Langevin step overshoots); measured on std
# over 3 seeds with trailing spacing it is: ddpm 1000 -0.004 (fixed_small) / +0.001 (fixed_large),
# ddim 200 -0.007, ddim eta=1 1000 -0.004, Euler-Maruyama 500 +0.002, pc 250 +0.003, heun 50 -0.008,
# dpm++ 50 -0.005, the same at every size of sample (pc's was +0.033 at 16 dims and +0.011 at 64 when its
# step size came from per-sample norms); the mean bias is <= 0.003 everywhere. Tolerance = that bias + ~0.006 (7 SE):
# tight enough that e.g. 10% too much Euler-Maruyama noise (+0.016 on std) fails.
CASES = [
    ("ddpm", 1000, {}, 0.012),
    ("ddpm", 1000, {"variance": "fixed_large"}, 0.008),
    ("ddim", 200, {"eta": 0.0}, 0.014),
    ("ddim", 1000, {"eta": 1.0}, 0.012),
    ("euler_maruyama", 500, {}, 0.008),
    ("pc", 250, {"snr": 0.16, "corrector_steps": 1}, 0.010),
    ("heun", 50, {}, 0.014),
    ("dpm_solver_pp_2m", 50, {}, 0.012),
]
MEAN_TOLERANCE = 0.008  # mean bias <= 0.003 plus ~4 SE
DETERMINISTIC = [("ddim", {"eta": 0.0}), ("heun", {}), ("dpm_solver_pp_2m", {})]
STOCHASTIC = [("ddpm", {}), ("ddim", {"eta": 1.0}), ("euler_maruyama", {}), ("pc", {})]


def test_cases_cover_every_registered_sampler():
    names = {name for name, *_ in CASES}
    assert names == set(SAMPLERS) == {n for n, _ in DETERMINISTIC + STOCHASTIC}


@pytest.mark.parametrize("dims", sorted(SAMPLE_SHAPES))
@pytest.mark.parametrize("name,steps,options,std_tolerance", CASES, ids=lambda v: str(v))
def test_gaussian_data_is_recovered(name, steps, options, std_tolerance, dims):
    """Mean and std of the samples match (MU, S) within the tolerances justified above CASES, whatever the
    number of dimensions per sample."""
    x = sample(
        gaussian_eps_fn(LINEAR), noise(n=65536 // dims, dims=dims), schedule=LINEAR, sampler=name, steps=steps,
        generator=torch.Generator().manual_seed(1), timestep_spacing="trailing", **options,
    )
    assert torch.isfinite(x).all()
    assert x.mean().item() == pytest.approx(MU, abs=MEAN_TOLERANCE)
    assert x.std().item() == pytest.approx(S, abs=std_tolerance)


@pytest.mark.parametrize("name", ["ddim", "dpm_solver_pp_2m", "ddpm"])
def test_gaussian_data_is_recovered_from_a_flow_model_on_the_rectified_flow_schedule(name):
    """A network predicting the flow velocity eps - x0 on the straight-path schedule (Liu et al. 2023), turned
    into the samplers' eps contract by the adapter."""
    rf = NoiseSchedule.rectified_flow(1000)
    exact_eps = gaussian_eps_fn(rf)

    def flow_model(x_t, t, labels):
        abar = rf.at(rf.alphas_cumprod, t, x_t)
        return convert(exact_eps(x_t, t), x_t, abar, "epsilon", "flow")

    steps = {"ddim": 200, "dpm_solver_pp_2m": 50, "ddpm": 1000}[name]
    x = sample(eps_fn_from_model(flow_model, rf, "flow"), noise(2), schedule=rf, sampler=name, steps=steps,
               generator=torch.Generator().manual_seed(2))
    assert x.mean().item() == pytest.approx(MU, abs=MEAN_TOLERANCE)
    assert x.std().item() == pytest.approx(S, abs=0.01)


@pytest.mark.parametrize("name", ["ddim", "dpm_solver_pp_2m", "ddpm"])
def test_gaussian_data_is_recovered_on_the_cosine_schedule(name):
    """Cosine schedule, same sample size; measured std biases: ddim 200 -0.004, dpm++ 50 -0.001, ddpm 1000 -0.002."""
    cosine = NoiseSchedule.cosine(1000)
    steps = {"ddim": 200, "dpm_solver_pp_2m": 50, "ddpm": 1000}[name]
    x = sample(gaussian_eps_fn(cosine), noise(2), schedule=cosine, sampler=name, steps=steps,
               generator=torch.Generator().manual_seed(2))
    assert x.mean().item() == pytest.approx(MU, abs=MEAN_TOLERANCE)
    assert x.std().item() == pytest.approx(S, abs=0.01)


@pytest.mark.parametrize("name,options", DETERMINISTIC)
def test_deterministic_samplers_repeat_exactly_and_ignore_the_generator(name, options):
    x_T = noise(3, n=64)
    runs = [
        sample(gaussian_eps_fn(LINEAR), x_T, schedule=LINEAR, sampler=name, steps=10, generator=g, **options)
        for g in (None, torch.Generator().manual_seed(0), torch.Generator().manual_seed(99))
    ]
    assert torch.equal(runs[0], runs[1]) and torch.equal(runs[0], runs[2])


@pytest.mark.parametrize("name,options", DETERMINISTIC)
def test_deterministic_samplers_treat_samples_independently(name, options):
    x_T = noise(4, n=6)
    whole = sample(gaussian_eps_fn(LINEAR), x_T, schedule=LINEAR, sampler=name, steps=8, **options)
    alone = torch.cat([sample(gaussian_eps_fn(LINEAR), x_T[i : i + 1], schedule=LINEAR, sampler=name, steps=8,
                              **options) for i in range(6)])
    torch.testing.assert_close(whole, alone)


@pytest.mark.parametrize("name,options", STOCHASTIC)
def test_stochastic_samplers_reproduce_per_seed(name, options):
    x_T = noise(5, n=64)

    def run(seed):
        return sample(gaussian_eps_fn(LINEAR), x_T, schedule=LINEAR, sampler=name, steps=10,
                      generator=torch.Generator().manual_seed(seed), **options)

    assert torch.equal(run(7), run(7))
    assert not torch.equal(run(7), run(8))
    with pytest.raises(ValueError, match="generator"):
        sample(gaussian_eps_fn(LINEAR), x_T, schedule=LINEAR, sampler=name, steps=10, **options)


@pytest.mark.parametrize("name,options", STOCHASTIC)
def test_per_row_generators_make_each_sample_independent_of_its_batch(name, options):
    x_T = noise(10, n=4)

    def run(rows):
        return sample(gaussian_eps_fn(LINEAR), x_T[rows], schedule=LINEAR, sampler=name, steps=6,
                      generator=SampleGenerators([100 + r for r in rows]), **options)

    torch.testing.assert_close(run([0, 1, 2, 3])[2:], run([2, 3]))


@pytest.mark.parametrize("steps,spacing", [(1000, "trailing"), (37, "linspace"), (10, "leading")])
def test_ddim_with_eta_one_is_ddpm_step_by_step(steps, spacing):
    """Same noise draws, same result: Song et al. 2021 eq. 12 with eta = 1 is Ho et al. 2020 Alg. 2."""
    x_T = noise(6, n=32, dtype=torch.float64)
    common = dict(schedule=LINEAR, steps=steps, timestep_spacing=spacing)
    x_ddpm = sample(gaussian_eps_fn(LINEAR), x_T, sampler="ddpm", generator=torch.Generator().manual_seed(3), **common)
    x_ddim = sample(gaussian_eps_fn(LINEAR), x_T, sampler="ddim", eta=1.0,
                    generator=torch.Generator().manual_seed(3), **common)
    torch.testing.assert_close(x_ddim, x_ddpm, rtol=1e-9, atol=1e-9)


def test_ddim_eta_one_variance_is_the_posterior_variance_at_every_step():
    t = torch.arange(1000)
    abar, abar_prev = LINEAR.alphas_cumprod, LINEAR.alphas_cumprod_prev
    sigma2 = torch.tensor([ddim_sigma(a, p, 1.0) ** 2 for a, p in zip(abar.tolist(), abar_prev.tolist())],
                          dtype=torch.float64)
    zeros = torch.zeros(1000, 1, dtype=torch.float64)
    _, posterior_variance = LINEAR.posterior_mean_variance(zeros, zeros, t)
    torch.testing.assert_close(sigma2, posterior_variance.flatten(), rtol=1e-12, atol=0)


@pytest.mark.parametrize("t", [0, 1, 250, 999])
def test_one_ddpm_step_draws_from_the_posterior_at_the_predicted_x0(t):
    """mu~(x_t, x0^) and beta~ of Ho et al. 2020 eqs. 6-7 vs the eps form of eq. 11 used by the sampler."""
    g = torch.Generator().manual_seed(t)
    x_t, eps, z = (torch.randn(8, 3, generator=g, dtype=torch.float64) for _ in range(3))
    abar, abar_prev = LINEAR.alphas_cumprod[t].item(), LINEAR.alphas_cumprod_prev[t].item()
    x0_hat = (x_t - math.sqrt(1 - abar) * eps) / math.sqrt(abar)
    mean, var = LINEAR.posterior_mean_variance(x0_hat, x_t, torch.full((8,), t))
    torch.testing.assert_close(ddpm_step(x_t, eps, abar, abar_prev, z, "fixed_small"), mean + var.sqrt() * z)
    torch.testing.assert_close(ddim_step(x_t, eps, abar, abar_prev, 1.0, z), mean + var.sqrt() * z)


@pytest.mark.parametrize("name,spacing,low,high", [
    ("ddim", "linspace", 0.8, 1.2),  # first order
    ("heun", "linspace", 1.7, 3.5),  # Karras et al. 2022: 2nd order
    ("dpm_solver_pp_2m", "trailing", 1.7, 4.5),  # Lu et al. 2022: 2nd order
])
def test_deterministic_samplers_converge_to_the_exact_flow_at_their_order(name, spacing, low, high):
    """Error vs the closed-form PF-ODE map at 100 and 200 steps; observed order = log2(e100 / e200)."""
    x_T = noise(7, n=64, dtype=torch.float64)
    errors = []
    for steps in (100, 200):
        start = sampling_grid(LINEAR, steps, spacing).alphas_cumprod[0]
        x = sample(gaussian_eps_fn(LINEAR), x_T, schedule=LINEAR, sampler=name, steps=steps, timestep_spacing=spacing)
        errors.append((x - exact_flow(x_T, start)).abs().mean().item())
    assert errors[1] < 0.02
    assert low < math.log2(errors[0] / errors[1]) < high


NFE = {"ddpm": 1, "ddim": 1, "euler_maruyama": 1, "pc": 3, "heun": 2, "dpm_solver_pp_2m": 1}


@pytest.mark.parametrize("name", sorted(SAMPLERS))
@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
def test_eps_fn_sees_long_grid_timesteps_and_the_expected_call_count(name, spacing):
    calls = []
    steps = 7
    options = {"corrector_steps": 2} if name == "pc" else {}
    sample(gaussian_eps_fn(LINEAR, calls), noise(8, n=5), schedule=LINEAR, sampler=name, steps=steps,
           generator=torch.Generator().manual_seed(0), timestep_spacing=spacing, **options)
    grid = set(sampling_grid(LINEAR, steps, spacing).timesteps)
    assert all(t.dtype == torch.long and t.shape == (5,) and len(set(t.tolist())) == 1 for t in calls)
    assert {t[0].item() for t in calls} <= grid
    expected = 2 * steps - 1 if name == "heun" else NFE[name] * steps
    assert len(calls) == expected


def test_langevin_step_size_depends_on_the_noise_level_only():
    """e = 2 alpha r^2 (1 - abar), whatever the batch, the sample's size or its score's norm."""
    g = torch.Generator().manual_seed(0)
    x, eps, z = (torch.randn(4, 8, generator=g) for _ in range(3))
    eps[0] *= 100  # a sample with a huge score must not change the others' step
    whole = langevin_correct(x, eps, 0.5, 0.99, 0.16, z)
    alone = torch.cat([langevin_correct(x[i : i + 1], eps[i : i + 1], 0.5, 0.99, 0.16, z[i : i + 1]) for i in range(4)])
    torch.testing.assert_close(whole, alone)
    step = 2 * 0.99 * 0.16**2 * (1 - 0.5)
    torch.testing.assert_close(whole, x - step * eps / math.sqrt(0.5) + math.sqrt(2 * step) * z)


def test_public_entry_point_as_documented():
    def eps_fn(x_t, t):
        return torch.zeros_like(x_t)

    x_T = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(0)
    sched = NoiseSchedule.linear(num_timesteps=1000, beta_start=1e-4, beta_end=0.02)
    x0 = sample(eps_fn, x_T, schedule=sched, sampler="ddim", steps=50, eta=0.0, timestep_spacing="leading", generator=g)
    assert x0.shape == x_T.shape and x0.dtype == x_T.dtype
    # with eps^ = 0, DDIM (eta 0) just rescales: x0 = x_T / sqrt(abar at the first visited step, t = 980)
    torch.testing.assert_close(x0, x_T / sched.alphas_cumprod[980].sqrt().float())


def test_bad_sampler_name_lists_the_allowed_names():
    with pytest.raises(ValueError, match="ddpm, ddim, euler_maruyama, pc, heun, dpm_solver_pp_2m"):
        sample(lambda x, t: x, noise(n=1), schedule=LINEAR, sampler="plms")


def test_options_are_checked_per_sampler():
    with pytest.raises(ValueError, match="'heun' has no option eta; its options: none"):
        sample(lambda x, t: x, noise(n=1), schedule=LINEAR, sampler="heun", eta=0.5)
    with pytest.raises(ValueError, match="its options: snr, corrector_steps"):
        sample(lambda x, t: x, noise(n=1), schedule=LINEAR, sampler="pc", eta=0.5)
    with pytest.raises(ValueError, match="'fixed_small' or 'fixed_large'"):
        sample(lambda x, t: x, noise(n=1), schedule=LINEAR, sampler="ddpm", variance="learned",
               generator=torch.Generator())
    with pytest.raises(ValueError, match="greater than 0"):
        sample(lambda x, t: x, noise(n=1), schedule=LINEAR, sampler="pc", snr=0.0, generator=torch.Generator())
    with pytest.raises(ValueError, match=r"steps must lie in \[1, 1000\]"):
        sample(lambda x, t: x, noise(n=1), schedule=LINEAR, sampler="ddim", steps=2000)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_sample_with_config_passes_only_the_samplers_own_options(name):
    config = SamplerConfig(name=name, steps=4, eta=0.5, snr=0.2, corrector_steps=2, timestep_spacing="linspace")
    x_T = noise(9, n=3)
    got = sample_with_config(gaussian_eps_fn(LINEAR), x_T, LINEAR, config, torch.Generator().manual_seed(4))
    extra = {"ddim": {"eta": 0.5}, "pc": {"snr": 0.2, "corrector_steps": 2}, "ddpm": {"variance": "fixed_small"}}
    want = sample(gaussian_eps_fn(LINEAR), x_T, schedule=LINEAR, sampler=name, steps=4, timestep_spacing="linspace",
                  generator=torch.Generator().manual_seed(4), **extra.get(name, {}))
    assert torch.equal(got, want)


def test_the_config_names_and_sweep_default_derive_from_the_sampler_declarations():
    """Settings first, then the guidance method's options, then each sampler's options, samplers in alphabetical
    order, each option described."""
    options = [(spec.name, option) for spec in sorted(SAMPLERS.values(), key=lambda s: s.name)
               for option in spec.option_names]
    guidance = list(Guidance.__pydantic_fields__)
    assert list(SamplerConfig.model_fields) == [*SamplerSettings.model_fields, *guidance, *(o for _, o in options)]
    for sampler, option in options:
        assert SamplerConfig.model_fields[option].description.startswith(f"{sampler}: ")
    assert get_args(SamplerConfig.model_fields["name"].annotation) == tuple(SAMPLERS) == SweepConfig().samplers
