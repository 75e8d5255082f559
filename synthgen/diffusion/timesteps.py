"""Which training timesteps a sampler visits, and the per-step noise levels all samplers share."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Literal, get_args

import numpy as np
import torch

from synthgen.diffusion.schedule import NoiseSchedule

TimestepSpacing = Literal["leading", "trailing", "linspace"]
TIMESTEP_SPACINGS: tuple[str, ...] = get_args(TimestepSpacing)


def select_timesteps(num_train_timesteps: int, steps: int, spacing: str) -> torch.Tensor:
    """`steps` distinct timesteps in [0, T-1], descending (Lin et al. 2023, Table 2; as in diffusers).

    T = 1000, 10 steps (0-based; the paper's 1-based table is these plus one):
      linspace  999 888 777 666 555 444 333 222 111 0   (round(linspace(0, T-1, steps)))
      leading   900 800 700 600 500 400 300 200 100 0   (k * (T // steps))
      trailing  999 899 799 699 599 499 399 299 199 99  (round(T - k T / steps) - 1)
    Only linspace and trailing start at T-1, i.e. from (almost) pure noise.
    """
    if spacing not in TIMESTEP_SPACINGS:
        raise ValueError(f"unknown timestep_spacing {spacing!r}; choose one of: {', '.join(TIMESTEP_SPACINGS)}")
    if not 1 <= steps <= num_train_timesteps:
        raise ValueError(f"steps must lie in [1, {num_train_timesteps}] (the training timesteps), got {steps}")
    if spacing == "linspace":
        descending = np.linspace(0, num_train_timesteps - 1, steps).round()[::-1]
    elif spacing == "leading":
        descending = (np.arange(steps) * (num_train_timesteps // steps))[::-1]
    else:
        descending = np.round(num_train_timesteps - np.arange(steps) * (num_train_timesteps / steps)) - 1
    return torch.from_numpy(np.ascontiguousarray(descending).astype(np.int64))


@dataclass(frozen=True)
class SamplingGrid:
    """Visited timesteps t_0 > ... > t_{N-1} with abar at each, plus abar = 1 (clean data) after the last.

    Python numbers computed once in float64, so a sampling loop makes no device round trips.
    """

    timesteps: tuple[int, ...]  # N training timesteps, descending
    alphas_cumprod: tuple[float, ...]  # N + 1 values: abar(t_0), ..., abar(t_{N-1}), 1.0

    def __len__(self) -> int:
        return len(self.timesteps)

    def steps(self) -> Iterator[tuple[int, float, float]]:
        """(t, abar_t, abar_next) per step; abar_next = 1 on the final step to clean data."""
        return zip(self.timesteps, self.alphas_cumprod[:-1], self.alphas_cumprod[1:])


def sampling_grid(schedule: NoiseSchedule, steps: int, spacing: str) -> SamplingGrid:
    """The grid a sampler walks: `select_timesteps` on this schedule, and abar there."""
    timesteps = select_timesteps(schedule.num_timesteps, steps, spacing)
    abar = schedule.alphas_cumprod.cpu()[timesteps].tolist()
    return SamplingGrid(tuple(timesteps.tolist()), tuple(abar) + (1.0,))


def timestep_batch(t: int, x: torch.Tensor) -> torch.Tensor:
    """The integer timestep t for every sample of x: a LongTensor (B,) on x's device (the eps_fn contract)."""
    return torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)


EpsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""The one denoiser contract of every sampler: eps_fn(x_t, t) -> eps_hat, where x_t is a noisy batch and
t a LongTensor (B,) of training timesteps in [0, T-1] on x_t's device."""
