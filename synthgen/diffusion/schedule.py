"""Discrete forward-process noise schedules (DDPM, Ho et al. 2020) over float64 tensors.

Index convention: integer timestep t in [0, T-1] indexes the arrays and is the paper's step t+1,
so t = 0 is the first noising step and abar at "t = -1" (clean data) is 1.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from synthgen.config.diffusion import ScheduleConfig


@dataclass(frozen=True, eq=False)
class NoiseSchedule:
    """Variances beta_t of q(x_t | x_{t-1}) = N(sqrt(1 - beta_t) x_{t-1}, beta_t I) (Ho et al. 2020, eq. 2)."""

    betas: torch.Tensor  # (T,) float64, each in (0, 1)

    def __post_init__(self) -> None:
        betas = torch.as_tensor(self.betas, dtype=torch.float64)
        if betas.ndim != 1 or betas.numel() < 1:
            raise ValueError(f"betas must be a non-empty 1-D tensor, got shape {tuple(betas.shape)}")
        if not bool(((betas > 0) & (betas < 1)).all()):
            raise ValueError("every beta must lie in (0, 1)")
        object.__setattr__(self, "betas", betas)

    # -- constructors ---------------------------------------------------------------------------

    @classmethod
    def linear(cls, num_timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> NoiseSchedule:
        """Betas linear in t (Ho et al. 2020, Sec. 4: 1e-4 to 0.02 over T = 1000)."""
        return cls(torch.linspace(beta_start, beta_end, num_timesteps, dtype=torch.float64))

    @classmethod
    def scaled_linear(
        cls, num_timesteps: int = 1000, beta_start: float = 0.00085, beta_end: float = 0.012
    ) -> NoiseSchedule:
        """Betas linear in sqrt(beta) (Rombach et al. 2022, the LDM / Stable Diffusion schedule)."""
        sqrt_betas = torch.linspace(beta_start**0.5, beta_end**0.5, num_timesteps, dtype=torch.float64)
        return cls(sqrt_betas**2)

    @classmethod
    def cosine(cls, num_timesteps: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> NoiseSchedule:
        """abar(t) = cos^2(((t/T + s)/(1 + s)) pi/2) / abar(0), betas clipped at 0.999.

        Nichol & Dhariwal 2021, eq. 17; beta_t = 1 - abar(t) / abar(t - 1).
        """
        u = torch.arange(num_timesteps + 1, dtype=torch.float64) / num_timesteps
        f = torch.cos((u + s) / (1 + s) * math.pi / 2) ** 2
        return cls((1 - f[1:] / f[:-1]).clamp(max=max_beta))

    @classmethod
    def rectified_flow(cls, num_timesteps: int = 1000, max_beta: float = 0.999) -> NoiseSchedule:
        """The straight path z_t = (1 - t) x0 + t eps as a VP schedule: abar(t) = (1 - t)^2 / ((1 - t)^2 + t^2).

        Rectified flow (Liu et al. 2023, eq. 1, with their X_0, X_1 swapped), the optimal-transport path of
        Lipman et al. 2023 (eq. 20-22 with sigma_min = 0), as used by Esser et al. 2024 (Sec. 3.1). Index k is
        RF time t = (k + 1) / T. Dividing z_t by c = sqrt((1 - t)^2 + t^2) gives the VP variable
        x_t = sqrt(abar) x0 + sqrt(1 - abar) eps, so every sampler drives it unchanged; the network sees x_t
        (input scaled to unit variance for unit data, as EDM's c_in does). abar(1) = 0 is clipped as in
        `cosine`: beta_{T-1} = max_beta.
        """
        t = torch.arange(num_timesteps + 1, dtype=torch.float64) / num_timesteps
        f = (1 - t) ** 2 / ((1 - t) ** 2 + t**2)
        return cls((1 - f[1:] / f[:-1]).clamp(max=max_beta))

    @classmethod
    def from_config(cls, config: ScheduleConfig) -> NoiseSchedule:
        """The schedule a `ScheduleConfig` names."""
        if config.kind == "cosine":
            return cls.cosine(config.num_timesteps, s=config.cosine_s)
        if config.kind == "rectified_flow":
            return cls.rectified_flow(config.num_timesteps)
        build = cls.linear if config.kind == "linear" else cls.scaled_linear
        return build(config.num_timesteps, config.beta_start, config.beta_end)

    # -- derived arrays -------------------------------------------------------------------------

    @property
    def num_timesteps(self) -> int:
        return self.betas.numel()

    @property
    def alphas(self) -> torch.Tensor:
        return 1 - self.betas

    @cached_property
    def alphas_cumprod(self) -> torch.Tensor:
        """abar_t = prod_{s <= t} (1 - beta_s)."""
        return torch.cumprod(self.alphas, dim=0)

    @property
    def alphas_cumprod_prev(self) -> torch.Tensor:
        """abar_{t-1}, with abar = 1 before the first step."""
        return torch.cat([self.betas.new_ones(1), self.alphas_cumprod[:-1]])

    @property
    def sigmas(self) -> torch.Tensor:
        """Noise level of the scaled variable x_t / sqrt(abar_t): sqrt((1 - abar_t) / abar_t) (Karras et al. 2022)."""
        abar = self.alphas_cumprod
        return ((1 - abar) / abar).sqrt()

    def snr(self, t: torch.Tensor) -> torch.Tensor:
        """Signal-to-noise ratio abar_t / (1 - abar_t) at integer timesteps t, float64."""
        abar = self.alphas_cumprod[t.to(self.betas.device)]
        return abar / (1 - abar)

    # -- forward process ------------------------------------------------------------------------

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps (Ho et al. 2020, eq. 4)."""
        abar = self.alphas_cumprod
        return self.at(abar.sqrt(), t, x0) * x0 + self.at((1 - abar).sqrt(), t, x0) * noise

    def posterior_mean_variance(
        self, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean mu~_t and variance beta~_t of q(x_{t-1} | x_t, x0) (Ho et al. 2020, eqs. 6-7).

        The variance has x_t's rank with singleton non-batch dims; it is 0 at t = 0.
        """
        abar = self.alphas_cumprod
        abar_prev = self.alphas_cumprod_prev
        coef_x0 = self.at(abar_prev.sqrt() * self.betas / (1 - abar), t, x_t)
        coef_xt = self.at(self.alphas.sqrt() * (1 - abar_prev) / (1 - abar), t, x_t)
        variance = self.at((1 - abar_prev) / (1 - abar) * self.betas, t, x_t)
        return coef_x0 * x0 + coef_xt * x_t, variance

    # -- plumbing -------------------------------------------------------------------------------

    def at(self, values: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """values[t] shaped (B, 1, ..., 1) to broadcast against `like`, in its dtype and device."""
        picked = values[t.to(values.device)]
        return picked.reshape(-1, *([1] * (like.ndim - 1))).to(device=like.device, dtype=like.dtype)

    def to(self, device: torch.device | str) -> NoiseSchedule:
        """The same schedule with its tensors on `device` (kept float64)."""
        return NoiseSchedule(self.betas.to(device))
