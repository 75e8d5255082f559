"""The one sampler contract, and the declaration every sampler module makes of itself (`SAMPLER = SamplerSpec(...)`)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping, Protocol

import torch
from pydantic.dataclasses import dataclass as options_dataclass

from synthgen.diffusion.noise import Generator
from synthgen.diffusion.schedule import NoiseSchedule
from synthgen.diffusion.timesteps import EpsFn


class SamplerFn(Protocol):
    """sampler(eps_fn, x_T, schedule, steps, generator, timestep_spacing, *, options) -> x0.

    eps_fn is the denoiser (`timesteps.EpsFn`); x_T ~ N(0, I) is the initial noise; the sampler visits `steps`
    timesteps of `schedule` chosen by `timestep_spacing` (`timesteps.select_timesteps`). A stochastic sampler
    draws all its noise from `generator` (a torch.Generator on x_T's device, or `noise.SampleGenerators`, one per
    row) and refuses None; a deterministic one ignores it. `options` is the sampler's own options dataclass.
    """

    def __call__(self, eps_fn: EpsFn, x_T: torch.Tensor, schedule: NoiseSchedule, steps: int,
                 generator: Generator | None, timestep_spacing: str, *, options: Any) -> torch.Tensor: ...


@options_dataclass(frozen=True)
class NoOptions:
    """The options of a sampler that has none."""


@dataclass(frozen=True)
class SamplerSpec:
    """A sampler, declared once in its own module; the config fields, the allowed names, the sweep default and
    the params docs are derived from these declarations (synthgen/diffusion/samplers/__init__.py)."""

    name: str  # the value of sample.sampler.name in params.yaml
    fn: SamplerFn  # the sampling loop
    paper: str  # the method's reference
    options: type = NoOptions  # a frozen pydantic dataclass: one field per option, each with a one-line comment

    @property
    def option_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(self.options))

    def make_options(self, values: Mapping[str, Any]) -> Any:
        """The options dataclass from `values` (validated; unnamed options keep their defaults)."""
        unknown = sorted(set(values) - set(self.option_names))
        if unknown:
            raise ValueError(f"sampler {self.name!r} has no option {', '.join(unknown)}; "
                             f"its options: {', '.join(self.option_names) or 'none'}")
        return self.options(**values)

    def options_from(self, settings: Any) -> Any:
        """The options dataclass from the same-named attributes of `settings` (a SamplerConfig)."""
        return self.options(**{name: getattr(settings, name) for name in self.option_names})
