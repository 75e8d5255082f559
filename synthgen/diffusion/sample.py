"""The public sampling entry point: pick a sampler by name and run it."""
from __future__ import annotations

import inspect

import torch

from synthgen.config.diffusion import SamplerConfig
from synthgen.diffusion.samplers import SAMPLERS
from synthgen.diffusion.noise import Generator
from synthgen.diffusion.schedule import NoiseSchedule
from synthgen.diffusion.timesteps import EpsFn


def sampler_options(name: str) -> tuple[str, ...]:
    """The keyword-only options of a sampler (e.g. ddim: eta), after checking the name."""
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; choose one of: {', '.join(SAMPLERS)}")
    parameters = inspect.signature(SAMPLERS[name]).parameters.values()
    return tuple(p.name for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY)


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
    allowed = sampler_options(sampler)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(
            f"sampler {sampler!r} has no option {', '.join(unknown)}; its options: {', '.join(allowed) or 'none'}"
        )
    fn = SAMPLERS[sampler]
    return fn(eps_fn, x_T, schedule, steps, generator, timestep_spacing, **options)


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
    options = {name: getattr(config, name) for name in sampler_options(config.name)}
    return sample(
        eps_fn,
        x_T,
        schedule=schedule,
        sampler=config.name,
        steps=config.steps,
        generator=generator,
        timestep_spacing=config.timestep_spacing,
        **options,
    )
