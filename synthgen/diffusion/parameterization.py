"""Exact conversions between what a denoiser may predict: eps, x0 ("sample"), v or the flow velocity.

With x_t = a x0 + s eps, a = sqrt(abar_t), s = sqrt(1 - abar_t), a^2 + s^2 = 1 (Ho et al. 2020, eq. 4),
v = a eps - s x0 (Salimans & Ho 2022, Sec. 4 and App. D) and the rectified-flow velocity u = eps - x0
(d/dt of z_t = (1 - t) x0 + t eps: Liu et al. 2023, eq. 1; Lipman et al. 2023, eq. 23 with sigma_min = 0),
any one prediction plus x_t gives the others:
    x0 = (x_t - s eps) / a        eps = (x_t - a x0) / s
    x0 = a x_t - s v              eps = s x_t + a v
    x0 = (x_t - s u) / (a + s)    eps = (x_t + a u) / (a + s)
The last line holds on any VP schedule (x_t - s u = (a + s) x0); on `NoiseSchedule.rectified_flow`,
x_t / (a + s) = z_t is the flow's own variable and t = s / (a + s). a + s >= 1, so it never divides by ~0.
`abar` is abar_t broadcastable against x_t (use `NoiseSchedule.at`).
"""
from __future__ import annotations

from typing import Literal, get_args

import torch

PredictionType = Literal["epsilon", "v_prediction", "sample", "flow"]
PREDICTION_TYPES: tuple[str, ...] = get_args(PredictionType)


def check_prediction_type(prediction_type: str) -> None:
    """Reject an unknown prediction type with the allowed names."""
    if prediction_type not in PREDICTION_TYPES:
        raise ValueError(f"unknown prediction_type {prediction_type!r}; choose one of: {', '.join(PREDICTION_TYPES)}")


def to_epsilon(prediction: torch.Tensor, x_t: torch.Tensor, abar: torch.Tensor, prediction_type: str) -> torch.Tensor:
    """The eps implied by a prediction of `prediction_type` at x_t (Salimans & Ho 2022, App. D)."""
    check_prediction_type(prediction_type)
    a, s = abar.sqrt(), (1 - abar).sqrt()
    if prediction_type == "epsilon":
        return prediction
    if prediction_type == "sample":
        return (x_t - a * prediction) / s
    if prediction_type == "flow":
        return (x_t + a * prediction) / (a + s)
    return s * x_t + a * prediction


def to_x0(prediction: torch.Tensor, x_t: torch.Tensor, abar: torch.Tensor, prediction_type: str) -> torch.Tensor:
    """The x0 implied by a prediction of `prediction_type` at x_t (Ho et al. 2020, eq. 15; Salimans & Ho 2022)."""
    check_prediction_type(prediction_type)
    a, s = abar.sqrt(), (1 - abar).sqrt()
    if prediction_type == "sample":
        return prediction
    if prediction_type == "epsilon":
        return (x_t - s * prediction) / a
    if prediction_type == "flow":
        return (x_t - s * prediction) / (a + s)
    return a * x_t - s * prediction


def to_v(prediction: torch.Tensor, x_t: torch.Tensor, abar: torch.Tensor, prediction_type: str) -> torch.Tensor:
    """The v = sqrt(abar) eps - sqrt(1 - abar) x0 implied by a prediction (Salimans & Ho 2022, Sec. 4)."""
    check_prediction_type(prediction_type)
    if prediction_type == "v_prediction":
        return prediction
    eps = to_epsilon(prediction, x_t, abar, prediction_type)
    x0 = to_x0(prediction, x_t, abar, prediction_type)
    return abar.sqrt() * eps - (1 - abar).sqrt() * x0


def to_flow(prediction: torch.Tensor, x_t: torch.Tensor, abar: torch.Tensor, prediction_type: str) -> torch.Tensor:
    """The flow velocity u = eps - x0 implied by a prediction (Liu et al. 2023, eq. 1; Esser et al. 2024, Sec. 3.1)."""
    check_prediction_type(prediction_type)
    if prediction_type == "flow":
        return prediction
    return to_epsilon(prediction, x_t, abar, prediction_type) - to_x0(prediction, x_t, abar, prediction_type)


def convert(
    prediction: torch.Tensor, x_t: torch.Tensor, abar: torch.Tensor, source: str, target: str
) -> torch.Tensor:
    """Re-express a `source`-type prediction as a `target`-type one."""
    check_prediction_type(target)
    to = {"epsilon": to_epsilon, "sample": to_x0, "v_prediction": to_v, "flow": to_flow}[target]
    return to(prediction, x_t, abar, source)


def training_target(x0: torch.Tensor, noise: torch.Tensor, abar: torch.Tensor, prediction_type: str) -> torch.Tensor:
    """What the network regresses onto: eps (Ho et al. 2020), x0, v = a eps - s x0 (Salimans & Ho 2022)
    or the flow velocity u = eps - x0 (Liu et al. 2023, eq. 1)."""
    check_prediction_type(prediction_type)
    if prediction_type == "epsilon":
        return noise
    if prediction_type == "sample":
        return x0
    if prediction_type == "flow":
        return noise - x0
    return abar.sqrt() * noise - (1 - abar).sqrt() * x0
