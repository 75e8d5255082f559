"""Probability-flow ODE with Heun's 2nd-order method (Karras et al. 2022, Alg. 1)."""
from __future__ import annotations

import math

import torch

from synthgen.diffusion.noise import Generator
from synthgen.diffusion.samplers.registry import NoOptions, SamplerSpec
from synthgen.diffusion.schedule import NoiseSchedule
from synthgen.diffusion.timesteps import EpsFn, sampling_grid, timestep_batch

EULER_ABOVE_SIGMA = 1000.0  # far above Karras et al.'s sigma_max = 80 and the linear schedule's 157: pure noise


def heun(eps_fn: EpsFn, x_T: torch.Tensor, schedule: NoiseSchedule, steps: int, generator: Generator | None,
         timestep_spacing: str, *, options: NoOptions) -> torch.Tensor:
    """Deterministic Heun steps on dx/dsigma = (x - D(x; sigma)) / sigma (Karras et al. 2022, Alg. 1; eqs. 1, 3).

    The VP process is rewritten in the scaled variable x = x_t / sqrt(abar_t) = x0 + sigma eps with
    sigma = sqrt((1 - abar_t) / abar_t), i.e. Alg. 1 with s(t) = 1 after undoing the VP scaling
    s = 1 / sqrt(1 + sigma^2) (Karras et al. 2022, eq. 4, Table 1). There the ODE slope is simply eps^.
    Sigmas are those of the visited training timesteps, ending at sigma = 0, so eps_fn is only
    evaluated on the grid; the last step (to sigma = 0) is Euler. 2 * steps - 1 network calls.
    The generator is unused (the sampler is deterministic) and accepted for the common signature.
    Karras et al. start at sigma_max = 80; the linear schedule's t = T-1 has sigma = 157, fine, but the
    cosine schedule's clipped last beta gives sigma = 2e4 there. From such a sigma the trapezoid
    multiplies the change of the denoiser across the step by (sigma_i - sigma_next) / (2 sigma_next),
    ~1500 for a 10-step trailing grid (a trained model's samples came out with std 145 instead of 1),
    so a step starting above EULER_ABOVE_SIGMA is taken with Euler, which is exact while the denoiser
    is constant, as it is on pure noise (one network call fewer).
    """
    grid = sampling_grid(schedule, steps, timestep_spacing)
    sigmas = [math.sqrt((1 - abar) / abar) for abar in grid.alphas_cumprod]
    timesteps = grid.timesteps

    def slope(x: torch.Tensor, i: int) -> torch.Tensor:
        x_t = x / math.sqrt(1 + sigmas[i] ** 2)
        return eps_fn(x_t, timestep_batch(timesteps[i], x_t))

    x = x_T * math.sqrt(1 + sigmas[0] ** 2)
    for i in range(len(grid)):
        d = slope(x, i)
        x_euler = x + (sigmas[i + 1] - sigmas[i]) * d
        if sigmas[i + 1] == 0:
            return x_euler
        if sigmas[i] > EULER_ABOVE_SIGMA:
            x = x_euler
            continue
        x = x + (sigmas[i + 1] - sigmas[i]) * (d + slope(x_euler, i + 1)) / 2
    return x


SAMPLER = SamplerSpec("heun", heun, "Karras et al. 2022, Alg. 1")
