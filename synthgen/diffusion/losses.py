"""The simple denoising loss (Ho et al. 2020, eq. 14) with per-timestep weighting (Hang et al. 2023)
and a choice of training-timestep density (Esser et al. 2024)."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Callable, Literal, get_args

import torch

from synthgen.diffusion.parameterization import check_prediction_type, training_target
from synthgen.diffusion.schedule import NoiseSchedule

if TYPE_CHECKING:
    from synthgen.config.diffusion import DiffusionConfig

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


@dataclass(frozen=True)
class DiffusionLoss:
    """E_{t, eps} w(t) ||target - net(x_t, t, labels)||^2 with eps ~ N(0, I) (Ho et al. 2020, Alg. 1, eq. 14),
    w(t) from `loss_weight` (Min-SNR-gamma: Hang et al. 2023) and t drawn by `sample_timesteps`
    (uniform, or logit-normal: Esser et al. 2024).

    Built once from the diffusion params (`from_config`), then called with tensors only:
    `loss(net, x0, labels, generator)`. `labels` go to the net as given: drop them for classifier-free
    guidance beforehand (`guidance.drop_labels`). t and eps come from `generator` only, which must live
    on x0's device, as should the schedule (`on(device)`) to avoid a transfer per step; the MSE is
    taken in float32.
    """

    schedule: NoiseSchedule
    prediction_type: str = "epsilon"  # what the net predicts: epsilon, v_prediction or sample
    weighting: str = "uniform"  # uniform or min_snr
    gamma: float = 5.0  # Min-SNR gamma
    timestep_sampling: str = "uniform"  # uniform or logit_normal
    logit_mean: float = 0.0  # logit_normal: mean of logit(t/T)
    logit_std: float = 1.0  # logit_normal: std of logit(t/T)

    @classmethod
    def from_config(cls, cfg: DiffusionConfig, schedule: NoiseSchedule | None = None) -> DiffusionLoss:
        """The loss `cfg` trains with, on `schedule` (default: the one `cfg.schedule` describes)."""
        return cls(schedule if schedule is not None else NoiseSchedule.from_config(cfg.schedule), cfg.prediction_type,
                   cfg.loss_weighting, cfg.min_snr_gamma, cfg.timestep_sampling, cfg.timestep_logit_mean,
                   cfg.timestep_logit_std)

    def on(self, device: torch.device | str) -> DiffusionLoss:
        """The same loss with its schedule on `device`."""
        return replace(self, schedule=self.schedule.to(device))

    def __call__(self, net: ModelFn, x0: torch.Tensor, labels: torch.Tensor | None,
                 generator: torch.Generator) -> torch.Tensor:
        # 1) timesteps and noise, from the passed generator only
        t = sample_timesteps(x0.shape[0], self.schedule.num_timesteps, generator, x0.device, self.timestep_sampling,
                             self.logit_mean, self.logit_std)
        noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        # 2) noise the data and predict
        x_t = self.schedule.q_sample(x0, t, noise)
        prediction = net(x_t, t, labels)
        # 3) weighted per-sample MSE against the target of this parameterisation
        abar = self.schedule.at(self.schedule.alphas_cumprod, t, x0)
        target = training_target(x0, noise, abar, self.prediction_type)
        mse = (prediction.float() - target.float()).square().flatten(1).mean(dim=1)
        weight = loss_weight(self.schedule.snr(t).to(x0.device), self.prediction_type, self.weighting, self.gamma)
        return (weight.float() * mse).mean()
