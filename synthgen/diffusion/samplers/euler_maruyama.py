"""Euler-Maruyama on the reverse-time VP-SDE (Song et al. 2021, eq. 6 with the VP-SDE of eq. 11)."""
from __future__ import annotations

import math

import torch

from synthgen.diffusion.noise import Generator, gaussian_like
from synthgen.diffusion.samplers.registry import NoOptions, SamplerSpec
from synthgen.diffusion.schedule import NoiseSchedule
from synthgen.diffusion.timesteps import EpsFn, sampling_grid, timestep_batch


def euler_maruyama(eps_fn: EpsFn, x_T: torch.Tensor, schedule: NoiseSchedule, steps: int, generator: Generator | None,
                   timestep_spacing: str, *, options: NoOptions) -> torch.Tensor:
    """Euler-Maruyama steps of dx = [-beta/2 x - beta grad log p_t(x)] dt + sqrt(beta) dw_bar (Song et al. 2021).

    On the discrete grid the step's integrated beta, B = int beta dt = log(abar_next / abar_t),
    replaces beta dt, and the score is -eps^ / sqrt(1 - abar_t) (math doc, Sec. 3):
        x <- x + (B/2) x - B eps^ / sqrt(1 - abar_t) + sqrt(B) z.
    The final step returns the drift-only mean, as the reference code does ("noise_removal").
    """
    if generator is None:
        raise ValueError("euler_maruyama is stochastic: pass generator=torch.Generator(device=x_T.device)")
    x = x_T
    for t, abar, abar_next in sampling_grid(schedule, steps, timestep_spacing).steps():
        eps = eps_fn(x, timestep_batch(t, x))
        b = math.log(abar_next / abar)
        x = x + (b / 2) * x - (b / math.sqrt(1 - abar)) * eps
        if abar_next < 1.0:
            x = x + math.sqrt(b) * gaussian_like(x, generator)
    return x


SAMPLER = SamplerSpec("euler_maruyama", euler_maruyama, "Song et al. 2021, eq. 6")
