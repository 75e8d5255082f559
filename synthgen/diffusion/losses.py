"""The simple denoising loss (Ho et al. 2020, eq. 14) with per-timestep weighting (Hang et al. 2023)
and a choice of training-timestep density (Esser et al. 2024; Karras et al. 2022).

EDM (Karras et al. 2022, Table 1) in this code's terms. With latents of unit std (sigma_data = 1) and
x_t = a x0 + s eps, a = sqrt(abar_t), s = sqrt(1 - abar_t), EDM's variable is x = x_t / a = x0 + sigma eps
with sigma = s / a, so 1 + sigma^2 = 1 / a^2 and EDM's preconditioning reads
    c_in    = 1 / sqrt(sigma^2 + 1)          = a    -> the network input c_in x = x_t, what it gets here;
    c_skip  = 1 / (sigma^2 + 1)              = a^2
    c_out   = sigma / sqrt(sigma^2 + 1)      = s    -> D = c_skip x + c_out F = a x_t + s F;
and v-prediction gives x0 = a x_t - s v (Salimans & Ho 2022), so D is this code's x0 with F = -v.
c_noise = ln(sigma) / 4 only labels the noise level; the integer t here is a monotone function of it.
EDM's loss weight lambda(sigma) = (sigma^2 + 1) / sigma^2 = 1 / c_out^2 turns ||D - x0||^2 = c_out^2 ||F - F^||^2
into ||v - v^||^2: on v targets it is the `uniform` weighting, so there is no separate `edm` name
(on other targets it would be: eps (SNR + 1) / SNR, x0 SNR + 1, flow 1 / (a + s)^2).
What EDM changes is where it trains: `log_normal_sigma` draws ln sigma ~ N(P_mean, P_std^2).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Callable, Literal, get_args

import torch

from synthgen.diffusion.parameterization import check_prediction_type, to_x0, training_target
from synthgen.diffusion.schedule import NoiseSchedule

if TYPE_CHECKING:
    from synthgen.config.diffusion import DiffusionConfig

LossWeighting = Literal["uniform", "min_snr"]
TimestepSampling = Literal["uniform", "logit_normal", "log_normal_sigma"]
ModelFn = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]
LOSS_WEIGHTINGS: tuple[str, ...] = get_args(LossWeighting)
TIMESTEP_SAMPLINGS: tuple[str, ...] = get_args(TimestepSampling)


def loss_weight(snr: torch.Tensor, prediction_type: str, weighting: str, gamma: float = 5.0) -> torch.Tensor:
    """Per-sample weight of the MSE on a `prediction_type` target (Min-SNR-gamma: Hang et al. 2023, Sec. 3.4).

    Min-SNR clamps the x0-space weight at gamma: w_x0 = min(SNR, gamma). Since
    ||x0 - x0^||^2 = ||eps - eps^||^2 / SNR and ||v - v^||^2 = ||eps - eps^||^2 (SNR + 1) / SNR,
    the same objective reads min(SNR, gamma) / SNR on eps targets and min(SNR, gamma) / (SNR + 1) on v targets;
    ||x0 - x0^||^2 = ||u - u^||^2 s^2 / (a + s)^2 makes it min(SNR, gamma) / (sqrt(SNR) + 1)^2 on flow targets.
    `uniform` on flow targets is the conditional flow-matching loss of rectified flow (Esser et al. 2024, Sec. 3.1).
    """
    check_prediction_type(prediction_type)
    if weighting not in LOSS_WEIGHTINGS:
        raise ValueError(f"unknown loss weighting {weighting!r}; choose one of: {', '.join(LOSS_WEIGHTINGS)}")
    if weighting == "uniform":
        return torch.ones_like(snr)
    clamped = snr.clamp(max=gamma)
    denominator = {"epsilon": snr, "v_prediction": snr + 1, "sample": torch.ones_like(snr),
                   "flow": (snr.sqrt() + 1) ** 2}[prediction_type]
    return clamped / denominator


def sample_timesteps(n: int, schedule: NoiseSchedule, generator: torch.Generator, device: torch.device | str,
                     sampling: str = "uniform", mean: float = 0.0, std: float = 1.0) -> torch.Tensor:
    """Training timesteps, a LongTensor (n,) in [0, T-1] of `schedule`.

    `uniform`: t ~ U{0..T-1} (Ho et al. 2020, Alg. 1). `logit_normal`: t/T = sigmoid(u), u ~ N(mean, std^2)
    (Esser et al. 2024, Sec. 3.1, eq. 19), which spends more training on the middle noise levels, where a
    sample's shapes are decided, and fewer on the nearly clean and nearly pure-noise ends.
    `log_normal_sigma`: ln sigma ~ N(mean, std^2) (EDM: P_mean = -1.2, P_std = 1.2; Karras et al. 2022,
    Table 1), sigma = sqrt((1 - abar_t) / abar_t), each draw taken to the timestep nearest in ln sigma
    (draws beyond the schedule's range go to its first or last step).
    """
    if sampling not in TIMESTEP_SAMPLINGS:
        raise ValueError(f"unknown timestep sampling {sampling!r}; choose one of: {', '.join(TIMESTEP_SAMPLINGS)}")
    num_timesteps = schedule.num_timesteps
    if sampling == "uniform":
        return torch.randint(0, num_timesteps, (n,), generator=generator, device=device)
    u = torch.randn(n, generator=generator, device=device) * std + mean
    if sampling == "logit_normal":
        return (torch.sigmoid(u) * num_timesteps).long().clamp_(max=num_timesteps - 1)
    return nearest_log_sigma(u, schedule.sigmas.to(device).log())


def nearest_log_sigma(log_sigma: torch.Tensor, schedule_log_sigmas: torch.Tensor) -> torch.Tensor:
    """Index of the entry of the increasing `schedule_log_sigmas` (T,) nearest to each `log_sigma`, a LongTensor."""
    log_sigma = log_sigma.to(schedule_log_sigmas.dtype)
    upper = torch.searchsorted(schedule_log_sigmas, log_sigma).clamp_(1, schedule_log_sigmas.numel() - 1)
    below = log_sigma - schedule_log_sigmas[upper - 1] < schedule_log_sigmas[upper] - log_sigma
    return upper - below.long()


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
    prediction_type: str = "epsilon"  # what the net predicts: epsilon, v_prediction, sample or flow
    weighting: str = "uniform"  # uniform or min_snr
    gamma: float = 5.0  # Min-SNR gamma
    timestep_sampling: str = "uniform"  # uniform, logit_normal or log_normal_sigma
    logit_mean: float = 0.0  # logit_normal: mean of logit(t/T)
    logit_std: float = 1.0  # logit_normal: std of logit(t/T)
    log_sigma_mean: float = -1.2  # log_normal_sigma: mean of ln sigma (EDM's P_mean)
    log_sigma_std: float = 1.2  # log_normal_sigma: std of ln sigma (EDM's P_std)
    self_conditioning: bool = False  # the net takes (x_t, x0 estimate) along channels (`self_condition`)

    @classmethod
    def from_config(cls, cfg: DiffusionConfig, schedule: NoiseSchedule | None = None) -> DiffusionLoss:
        """The loss `cfg` trains with, on `schedule` (default: the one `cfg.schedule` describes)."""
        return cls(schedule if schedule is not None else NoiseSchedule.from_config(cfg.schedule), cfg.prediction_type,
                   cfg.loss_weighting, cfg.min_snr_gamma, cfg.timestep_sampling, cfg.timestep_logit_mean,
                   cfg.timestep_logit_std, cfg.timestep_log_sigma_mean, cfg.timestep_log_sigma_std,
                   cfg.model.self_conditioning)

    @property
    def density_moments(self) -> tuple[float, float]:
        """(mean, std) of the timestep density: of ln sigma for log_normal_sigma, of logit(t/T) otherwise."""
        if self.timestep_sampling == "log_normal_sigma":
            return self.log_sigma_mean, self.log_sigma_std
        return self.logit_mean, self.logit_std

    def on(self, device: torch.device | str) -> DiffusionLoss:
        """The same loss with its schedule on `device`."""
        return replace(self, schedule=self.schedule.to(device))

    def __call__(self, net: ModelFn, x0: torch.Tensor, labels: torch.Tensor | None,
                 generator: torch.Generator) -> torch.Tensor:
        # 1) timesteps and noise, from the passed generator only
        t = sample_timesteps(x0.shape[0], self.schedule, generator, x0.device, self.timestep_sampling,
                             *self.density_moments)
        noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        # 2) noise the data and predict
        x_t = self.schedule.q_sample(x0, t, noise)
        abar = self.schedule.at(self.schedule.alphas_cumprod, t, x0)
        if self.self_conditioning:
            x_t = self.self_condition(net, x_t, t, labels, abar, generator)
        prediction = net(x_t, t, labels)
        # 3) weighted per-sample MSE against the target of this parameterisation
        target = training_target(x0, noise, abar, self.prediction_type)
        mse = (prediction.float() - target.float()).square().flatten(1).mean(dim=1)
        weight = loss_weight(self.schedule.snr(t).to(x0.device), self.prediction_type, self.weighting, self.gamma)
        return (weight.float() * mse).mean()

    def self_condition(self, net: ModelFn, x_t: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None,
                       abar: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The net's input (x_t, x0 estimate): for half the batches (a coin from `generator`) the estimate is the
        net's own prediction from (x_t, 0), without gradient, else 0 (Chen et al. 2023, "Analog Bits", Sec. 3.2
        and Alg. 1), so the net learns to refine an estimate and to make one from nothing."""
        estimate = torch.zeros_like(x_t)
        if torch.rand((), generator=generator, device=x_t.device) < 0.5:
            with torch.no_grad():
                first = net(torch.cat([x_t, estimate], dim=1), t, labels)
                estimate = to_x0(first.to(x_t.dtype), x_t, abar, self.prediction_type)
        return torch.cat([x_t, estimate], dim=1)
