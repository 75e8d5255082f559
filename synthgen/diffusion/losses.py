"""The simple denoising loss (Ho et al. 2020, eq. 14) with per-timestep weighting (Hang et al. 2023)
and a choice of training-timestep density (Esser et al. 2024)."""
from __future__ import annotations

from typing import Callable, Literal, get_args

import torch

from synthgen.diffusion.parameterization import check_prediction_type, training_target
from synthgen.diffusion.schedule import NoiseSchedule

LossWeighting = Literal["uniform", "min_snr"]
TimestepSampling = Literal["uniform", "logit_normal"]
ModelFn = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]
LOSS_WEIGHTINGS: tuple[str, ...] = get_args(LossWeighting)
TIMESTEP_SAMPLINGS: tuple[str, ...] = get_args(TimestepSampling)


def loss_weight(snr: torch.Tensor, prediction_type: str, weighting: str, gamma: float = 5.0) -> torch.Tensor:
    """Per-sample weight of the MSE on a `prediction_type` target (Min-SNR-gamma: Hang et al. 2023, Sec. 3.4).

    Min-SNR clamps the x0-space weight at gamma: w_x0 = min(SNR, gamma). Since
    ||x0 - x0^||^2 = ||eps - eps^||^2 / SNR and ||v - v^||^2 = ||eps - eps^||^2 (SNR + 1) / SNR,
    the same objective reads min(SNR, gamma) / SNR on eps targets and min(SNR, gamma) / (SNR + 1) on v targets.
    """
    check_prediction_type(prediction_type)
    if weighting not in LOSS_WEIGHTINGS:
        raise ValueError(f"unknown loss weighting {weighting!r}; choose one of: {', '.join(LOSS_WEIGHTINGS)}")
    if weighting == "uniform":
        return torch.ones_like(snr)
    clamped = snr.clamp(max=gamma)
    denominator = {"epsilon": snr, "v_prediction": snr + 1, "sample": torch.ones_like(snr)}[prediction_type]
    return clamped / denominator


def sample_timesteps(n: int, num_timesteps: int, generator: torch.Generator, device: torch.device | str,
                     sampling: str = "uniform", logit_mean: float = 0.0, logit_std: float = 1.0) -> torch.Tensor:
    """Training timesteps, a LongTensor (n,) in [0, T-1].

    `uniform`: t ~ U{0..T-1} (Ho et al. 2020, Alg. 1). `logit_normal`: t/T = sigmoid(u), u ~ N(logit_mean,
    logit_std^2) (Esser et al. 2024, Sec. 3.1, eq. 19), which spends more training on the middle noise
    levels, where a sample's shapes are decided, and fewer on the nearly clean and nearly pure-noise ends.
    """
    if sampling not in TIMESTEP_SAMPLINGS:
        raise ValueError(f"unknown timestep sampling {sampling!r}; choose one of: {', '.join(TIMESTEP_SAMPLINGS)}")
    if sampling == "uniform":
        return torch.randint(0, num_timesteps, (n,), generator=generator, device=device)
    u = torch.randn(n, generator=generator, device=device) * logit_std + logit_mean
    return (torch.sigmoid(u) * num_timesteps).long().clamp_(max=num_timesteps - 1)


def diffusion_loss(
    model_fn: ModelFn,
    x0: torch.Tensor,
    labels: torch.Tensor | None,
    schedule: NoiseSchedule,
    prediction_type: str = "epsilon",
    weighting: str = "uniform",
    gamma: float = 5.0,
    generator: torch.Generator | None = None,
    timestep_sampling: str = "uniform",
    logit_mean: float = 0.0,
    logit_std: float = 1.0,
) -> torch.Tensor:
    """E_{t, eps} w(t) ||target - model(x_t, t, labels)||^2 with eps ~ N(0, I) (Ho et al. 2020, Alg. 1) and
    t drawn by `sample_timesteps` (uniform by default).

    `labels` go to the model as given: drop them for classifier-free guidance beforehand
    (`guidance.drop_labels`). The generator must live on x0's device, and the schedule should too
    (`schedule.to(device)`) to avoid a transfer per step; the MSE is taken in float32.
    """
    if generator is None:
        raise ValueError("diffusion_loss draws t and noise: pass generator=torch.Generator(device=x0.device)")
    # 1) timesteps and noise, from the passed generator only
    t = sample_timesteps(x0.shape[0], schedule.num_timesteps, generator, x0.device, timestep_sampling, logit_mean,
                         logit_std)
    noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    # 2) noise the data and predict
    x_t = schedule.q_sample(x0, t, noise)
    prediction = model_fn(x_t, t, labels)
    # 3) weighted per-sample MSE against the target of this parameterisation
    abar = schedule.at(schedule.alphas_cumprod, t, x0)
    target = training_target(x0, noise, abar, prediction_type)
    mse = (prediction.float() - target.float()).square().flatten(1).mean(dim=1)
    weight = loss_weight(schedule.snr(t).to(x0.device), prediction_type, weighting, gamma)
    return (weight.float() * mse).mean()
