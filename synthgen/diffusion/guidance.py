"""Classifier-free guidance (Ho & Salimans 2022): label dropout in training, guided prediction at sampling."""
from __future__ import annotations

from typing import Callable

import torch

ModelFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def drop_labels(
    labels: torch.Tensor, p_uncond: float, null_label: int, generator: torch.Generator
) -> torch.Tensor:
    """Replace each label by `null_label` with probability p_uncond (Ho & Salimans 2022, Alg. 1).

    Always draws one uniform per label, so the generator advances the same way for every p_uncond.
    The generator must live on the labels' device.
    """
    if not 0.0 <= p_uncond <= 1.0:
        raise ValueError(f"p_uncond must lie in [0, 1], got {p_uncond}")
    drop = torch.rand(labels.shape, generator=generator, device=labels.device) < p_uncond
    return torch.where(drop, torch.full_like(labels, null_label), labels)


def guided_prediction(
    model: ModelFn,
    x_t: torch.Tensor,
    t: torch.Tensor,
    labels: torch.Tensor,
    guidance_scale: float | torch.Tensor,
    null_label: int,
) -> torch.Tensor:
    """pred_uncond + s (pred_cond - pred_uncond) from ONE batched forward (Ho & Salimans 2022, eq. 6).

    The scale s is the paper's 1 + w (the convention of diffusers and the math doc).
    Valid for eps, v and x0 outputs alike: at fixed x_t and t they are affine in one another, so
    guiding any of them and converting equals converting and then guiding. s = 1 runs only the
    conditional half; s = 0 gives the unconditional model. A tensor s (B, 1, ..., 1) guides each sample
    with its own scale, in the same single forward.
    """
    if isinstance(guidance_scale, (int, float)) and guidance_scale == 1.0:
        return model(x_t, t, labels)
    null = torch.full_like(labels, null_label)
    both = model(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([labels, null]))
    cond, uncond = both.chunk(2)
    return uncond + guidance_scale * (cond - uncond)
