"""Denoising diffusion implicit models (Song, Meng & Ermon 2021)."""
from __future__ import annotations

import math

import torch
from pydantic import Field
from pydantic.dataclasses import dataclass

from synthgen.diffusion.noise import Generator, gaussian_like
from synthgen.diffusion.samplers.registry import SamplerSpec
from synthgen.diffusion.schedule import NoiseSchedule
from synthgen.diffusion.timesteps import EpsFn, sampling_grid, timestep_batch


@dataclass(frozen=True)
class DDIMOptions:
    eta: float = Field(0.0, ge=0.0, le=1.0)  # 0 deterministic, 1 = DDPM variance


def ddim_sigma(abar: float, abar_next: float, eta: float) -> float:
    """sigma(eta) = eta sqrt((1 - abar_prev) / (1 - abar_t)) sqrt(1 - abar_t / abar_prev) (Song et al. 2021, eq. 16)."""
    return eta * math.sqrt((1 - abar_next) / (1 - abar)) * math.sqrt(1 - abar / abar_next)


def ddim_step(
    x: torch.Tensor, eps: torch.Tensor, abar: float, abar_next: float, eta: float, noise: torch.Tensor | None
) -> torch.Tensor:
    """x_prev = sqrt(abar_prev) x0^ + sqrt(1 - abar_prev - sigma^2) eps^ + sigma z (Song et al. 2021, eq. 12)."""
    x0 = (x - math.sqrt(1 - abar) * eps) / math.sqrt(abar)
    sigma = ddim_sigma(abar, abar_next, eta)
    x_next = math.sqrt(abar_next) * x0 + math.sqrt(max(1 - abar_next - sigma**2, 0.0)) * eps
    return x_next if noise is None else x_next + sigma * noise


def ddim(eps_fn: EpsFn, x_T: torch.Tensor, schedule: NoiseSchedule, steps: int, generator: Generator | None,
         timestep_spacing: str, *, options: DDIMOptions) -> torch.Tensor:
    """Generalised (non-Markovian) reverse process on a timestep sub-sequence (Song et al. 2021, eq. 12).

    eta = 0 is the deterministic DDIM (no generator needed); eta = 1 has DDPM's posterior variance.
    """
    eta = options.eta
    if eta > 0 and generator is None:
        raise ValueError("ddim with eta > 0 is stochastic: pass generator=torch.Generator(device=x_T.device)")
    x = x_T
    for t, abar, abar_next in sampling_grid(schedule, steps, timestep_spacing).steps():
        eps = eps_fn(x, timestep_batch(t, x))
        noise = gaussian_like(x, generator) if eta > 0 else None
        x = ddim_step(x, eps, abar, abar_next, eta, noise)
    return x


SAMPLER = SamplerSpec("ddim", ddim, "Song, Meng & Ermon 2021, eq. 12", DDIMOptions)
