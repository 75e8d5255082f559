"""Every sampler by name: each module declares itself once (`SAMPLER`), in this order, which is also the order
of the sweep default and of the allowed names. The contract they share is `registry.SamplerFn`."""
from __future__ import annotations

from synthgen.diffusion.samplers import ddim, ddpm, dpm_solver, euler_maruyama, heun, predictor_corrector
from synthgen.diffusion.samplers.registry import NoOptions, SamplerFn, SamplerSpec

SAMPLERS: dict[str, SamplerSpec] = {
    module.SAMPLER.name: module.SAMPLER
    for module in (ddpm, ddim, euler_maruyama, predictor_corrector, heun, dpm_solver)
}


def sampler_spec(name: str) -> SamplerSpec:
    """The declaration of sampler `name`, or an error that lists the registered names."""
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; choose one of: {', '.join(SAMPLERS)}")
    return SAMPLERS[name]


__all__ = ["SAMPLERS", "NoOptions", "SamplerFn", "SamplerSpec", "sampler_spec"]
