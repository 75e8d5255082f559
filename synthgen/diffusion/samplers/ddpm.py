"""DDPM ancestral sampling (Ho et al. 2020, Alg. 2), on any grid of the training timesteps."""
from __future__ import annotations

import math

from typing import Literal

import torch
from pydantic.dataclasses import dataclass

from synthgen.diffusion.noise import Generator, gaussian_like
from synthgen.diffusion.samplers.registry import SamplerSpec
from synthgen.diffusion.schedule import NoiseSchedule
from synthgen.diffusion.timesteps import EpsFn, sampling_grid, timestep_batch

@dataclass(frozen=True)
class DDPMOptions:
    variance: Literal["fixed_small", "fixed_large"] = "fixed_small"  # beta~_t or beta_t


def ddpm_step(
    x: torch.Tensor, eps: torch.Tensor, abar: float, abar_next: float, noise: torch.Tensor, variance: str
) -> torch.Tensor:
    """x_{t-1} = (x_t - beta_t / sqrt(1 - abar_t) eps) / sqrt(alpha_t) + sigma_t z (Ho et al. 2020, eq. 11 and Alg. 2).

    On a sub-grid the step uses beta_t = 1 - abar_t / abar_next (Nichol & Dhariwal 2021, eq. 19).
    sigma_t^2 is beta~_t = (1 - abar_next) / (1 - abar_t) beta_t ("fixed_small", the posterior
    variance of eq. 7) or beta_t ("fixed_large"); the final step to clean data adds no noise.
    """
    beta = 1 - abar / abar_next
    mean = (x - beta / math.sqrt(1 - abar) * eps) / math.sqrt(1 - beta)
    final = abar_next == 1.0
    small = (1 - abar_next) / (1 - abar) * beta
    sigma = 0.0 if final else math.sqrt(small if variance == "fixed_small" else beta)
    return mean + sigma * noise


def ddpm(eps_fn: EpsFn, x_T: torch.Tensor, schedule: NoiseSchedule, steps: int, generator: Generator | None,
         timestep_spacing: str, *, options: DDPMOptions) -> torch.Tensor:
    """Ancestral sampling of p(x_{t-1} | x_t) (Ho et al. 2020, Alg. 2), respaced to `steps` timesteps
    (Nichol & Dhariwal 2021, Sec. 4). Stochastic: one N(0, I) draw per step from `generator`."""
    if generator is None:
        raise ValueError("ddpm is stochastic: pass generator=torch.Generator(device=x_T.device)")
    x = x_T
    for t, abar, abar_next in sampling_grid(schedule, steps, timestep_spacing).steps():
        eps = eps_fn(x, timestep_batch(t, x))
        noise = gaussian_like(x, generator)
        x = ddpm_step(x, eps, abar, abar_next, noise, options.variance)
    return x


SAMPLER = SamplerSpec("ddpm", ddpm, "Ho, Jain & Abbeel 2020, Alg. 2", DDPMOptions)
