"""The public sampling entry point: pick a sampler by name and run it."""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from synthgen.diffusion.noise import Generator
from synthgen.diffusion.samplers import sampler_spec
from synthgen.diffusion.schedule import NoiseSchedule
from synthgen.diffusion.timesteps import EpsFn

if TYPE_CHECKING:
    from synthgen.config.diffusion import SamplerConfig


def sample(
    eps_fn: EpsFn,
    x_T: torch.Tensor,
    *,
    schedule: NoiseSchedule,
    sampler: str = "ddim",
    steps: int = 50,
    generator: Generator | None = None,
    timestep_spacing: str = "trailing",
    **options: float | int | str,
) -> torch.Tensor:
    """Run sampler `sampler` from x_T ~ N(0, I) and return x0 (see each sampler's docstring for its paper).

    `options` are the sampler's own keywords: ddim eta; ddpm variance; pc snr, corrector_steps.
    Stochastic samplers need a generator: a torch.Generator on x_T's device, or one generator per
    row (`noise.SampleGenerators`), which makes each sample independent of the batch it runs in.
    """
    spec = sampler_spec(sampler)
    return spec.fn(eps_fn, x_T, schedule, steps, generator, timestep_spacing, options=spec.make_options(options))


def sample_with_config(
    eps_fn: EpsFn,
    x_T: torch.Tensor,
    schedule: NoiseSchedule,
    config: SamplerConfig,
    generator: Generator | None = None,
) -> torch.Tensor:
    """`sample` with the settings of a `SamplerConfig`, passing the named sampler only its own options.

    Guidance is not a sampler option: build eps_fn with `adapter.eps_fn_from_model(..., config.guidance_scale)`.
    """
    spec = sampler_spec(config.name)
    return spec.fn(eps_fn, x_T, schedule, config.steps, generator, config.timestep_spacing,
                   options=spec.options_from(config))
