"""Exact conversions between what a denoiser may predict: eps, x0 ("sample") or v.

With x_t = a x0 + s eps, a = sqrt(abar_t), s = sqrt(1 - abar_t), a^2 + s^2 = 1 (Ho et al. 2020, eq. 4)
and v = a eps - s x0 (Salimans & Ho 2022, Sec. 4 and App. D), any one prediction plus x_t gives the others:
    x0 = (x_t - s eps) / a        eps = (x_t - a x0) / s
    x0 = a x_t - s v              eps = s x_t + a v
`abar` is abar_t broadcastable against x_t (use `NoiseSchedule.at`).
"""
from __future__ import annotations

from typing import Literal, get_args

import torch

PredictionType = Literal["epsilon", "v_prediction", "sample"]
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
    return s * x_t + a * prediction


def to_x0(prediction: torch.Tensor, x_t: torch.Tensor, abar: torch.Tensor, prediction_type: str) -> torch.Tensor:
    """The x0 implied by a prediction of `prediction_type` at x_t (Ho et al. 2020, eq. 15; Salimans & Ho 2022)."""
    check_prediction_type(prediction_type)
    a, s = abar.sqrt(), (1 - abar).sqrt()
    if prediction_type == "sample":
        return prediction
    if prediction_type == "epsilon":
        return (x_t - s * prediction) / a
    return a * x_t - s * prediction


def to_v(prediction: torch.Tensor, x_t: torch.Tensor, abar: torch.Tensor, prediction_type: str) -> torch.Tensor:
    """The v = sqrt(abar) eps - sqrt(1 - abar) x0 implied by a prediction (Salimans & Ho 2022, Sec. 4)."""
    check_prediction_type(prediction_type)
    if prediction_type == "v_prediction":
        return prediction
    eps = to_epsilon(prediction, x_t, abar, prediction_type)
    x0 = to_x0(prediction, x_t, abar, prediction_type)
    return abar.sqrt() * eps - (1 - abar).sqrt() * x0


def convert(
    prediction: torch.Tensor, x_t: torch.Tensor, abar: torch.Tensor, source: str, target: str
) -> torch.Tensor:
    """Re-express a `source`-type prediction as a `target`-type one."""
    check_prediction_type(target)
    to = {"epsilon": to_epsilon, "sample": to_x0, "v_prediction": to_v}[target]
    return to(prediction, x_t, abar, source)


def training_target(x0: torch.Tensor, noise: torch.Tensor, abar: torch.Tensor, prediction_type: str) -> torch.Tensor:
    """What the network regresses onto: eps (Ho et al. 2020), x0, or v = a eps - s x0 (Salimans & Ho 2022)."""
    check_prediction_type(prediction_type)
    if prediction_type == "epsilon":
        return noise
    if prediction_type == "sample":
        return x0
    return abar.sqrt() * noise - (1 - abar).sqrt() * x0
