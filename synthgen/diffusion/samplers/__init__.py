"""Every sampler by name. All share one signature:
`sampler(eps_fn, x_T, schedule, steps, generator, timestep_spacing, **options) -> x0`."""
from __future__ import annotations

from typing import Callable

from synthgen.diffusion.samplers.ddim import ddim
from synthgen.diffusion.samplers.ddpm import ddpm
from synthgen.diffusion.samplers.dpm_solver import dpm_solver_pp_2m
from synthgen.diffusion.samplers.euler_maruyama import euler_maruyama
from synthgen.diffusion.samplers.heun import heun
from synthgen.diffusion.samplers.predictor_corrector import predictor_corrector

SAMPLERS: dict[str, Callable] = {
    "ddpm": ddpm,
    "ddim": ddim,
    "euler_maruyama": euler_maruyama,
    "pc": predictor_corrector,
    "heun": heun,
    "dpm_solver_pp_2m": dpm_solver_pp_2m,
}

__all__ = ["SAMPLERS", "ddim", "ddpm", "dpm_solver_pp_2m", "euler_maruyama", "heun", "predictor_corrector"]
