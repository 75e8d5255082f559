"""Turn a trained network model(x_t, t, labels) -> prediction into the samplers' eps_fn(x_t, t)."""
from __future__ import annotations

from typing import Callable

import torch

from synthgen.diffusion.guidance import CFG, Guidance, autoguided, conditional_pair, guided_prediction
from synthgen.diffusion.parameterization import check_prediction_type, to_epsilon, to_x0
from synthgen.diffusion.schedule import NoiseSchedule
from synthgen.diffusion.timesteps import EpsFn

Model = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]


def eps_fn_from_model(
    model: Model,
    schedule: NoiseSchedule,
    prediction_type: str,
    labels: torch.Tensor | None = None,
    guidance_scale: float = 1.0,
    null_label: int | None = None,
    guidance_interval: tuple[float, float] | None = None,
    guidance: Guidance = CFG,
    guide: Model | None = None,
    self_conditioning: bool = False,
) -> EpsFn:
    """eps_fn(x_t, t) = eps implied by the (classifier-free guided) prediction (Ho & Salimans 2022, eq. 6).

    `labels` (B,) are fixed for the whole sampling run; guidance != 1 needs labels and the null label
    and costs one forward of batch 2B per call. Plain CFG acts on the raw prediction, which is affine
    in eps at fixed x_t, so the result equals guiding eps (Salimans & Ho 2022 conversions). The other
    `guidance` methods (rescaled CFG, APG) combine the two halves' x0 and convert the result to eps.

    `guidance_interval` (low, high) guides only where the noise level sigma_t = sqrt((1 - abar_t) / abar_t)
    lies in (low, high], and uses the conditional prediction elsewhere: the guidance weight w(sigma) of
    Kynkaanniemi et al. 2024, Sec. 3, with sigma the EDM noise level of the VP process.
    The choice is a per-sample tensor, so the host never waits on the device for it.

    `guidance.autoguidance_scale` a != 1 first extrapolates the conditional prediction away from `guide`, a
    weaker model of the same kind (`autoguided`, Karras et al. 2024); CFG then acts on the result.

    `self_conditioning` feeds the model (x_t, the x0 of this eps_fn's previous call; 0 at the first) along
    channels (Chen et al. 2023, "Analog Bits", Sec. 3.2), the x0 being the guided one.

    APG with momentum and self-conditioning keep state across calls: build one eps_fn per sampler run.
    """
    check_prediction_type(prediction_type)
    if guidance_scale != 1.0 and (labels is None or null_label is None):
        raise ValueError("guidance_scale != 1 needs labels and null_label (the model's null class index)")
    if guidance.autoguidance_scale != 1.0 and labels is not None:
        if guide is None or null_label is None:
            raise ValueError("autoguidance_scale != 1 needs a guide model and null_label")
        model = autoguided(model, guide, null_label, guidance.autoguidance_scale)

    on_device: dict[torch.device, NoiseSchedule] = {}  # one copy per device: no transfer per call
    momentum = guidance.momentum()
    previous: list[torch.Tensor] = []  # self-conditioning: the last x0 estimate

    def network_input(x_t: torch.Tensor) -> torch.Tensor:
        if not self_conditioning:
            return x_t
        return torch.cat([x_t, previous[-1] if previous else torch.zeros_like(x_t)], dim=1)

    def remember(x0: torch.Tensor) -> torch.Tensor:
        previous[:] = [x0]
        return x0

    def eps_fn(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if x_t.device not in on_device:
            on_device[x_t.device] = schedule.to(x_t.device)
        local = on_device[x_t.device]
        abar = local.at(local.alphas_cumprod, t, x_t)
        x_in = network_input(x_t)
        if labels is None:
            prediction = model(x_in, t, None)
        else:
            scale, inside = guidance_scale, None
            if guidance_interval is not None and guidance_scale != 1.0:
                sigma = local.at(local.sigmas, t, x_t)
                inside = (sigma > guidance_interval[0]) & (sigma <= guidance_interval[1])
                scale = torch.where(inside, guidance_scale, 1.0).to(x_t.dtype)
            if guidance.on_x0 and guidance_scale != 1.0:
                cond, uncond = (to_x0(half.to(x_t.dtype), x_t, abar, prediction_type)
                                for half in conditional_pair(model, x_in, t, labels, null_label))
                x0 = remember(guidance.combine_x0(cond, uncond, scale, momentum, inside))
                return to_epsilon(x0, x_t, abar, "sample")
            prediction = guided_prediction(model, x_in, t, labels, scale, null_label)
        prediction = prediction.to(x_t.dtype)
        if self_conditioning:
            remember(to_x0(prediction, x_t, abar, prediction_type))
        return to_epsilon(prediction, x_t, abar, prediction_type)

    return eps_fn
