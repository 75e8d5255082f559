"""Classifier-free guidance (Ho & Salimans 2022) and two variants meant to curb its over-saturation at high
scales: rescaled CFG (Lin et al. 2024) and adaptive projected guidance (Sadat et al. 2024)."""
from __future__ import annotations

from typing import Callable, Literal, get_args

import torch
from pydantic import Field
from pydantic.dataclasses import dataclass

ModelFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
GuidanceMethod = Literal["cfg", "cfg_rescale", "apg"]
GUIDANCE_METHODS: tuple[str, ...] = get_args(GuidanceMethod)


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


def conditional_pair(
    model: ModelFn, x_t: torch.Tensor, t: torch.Tensor, labels: torch.Tensor, null_label: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(pred_cond, pred_uncond) from ONE forward of batch 2B: the labels, then the null label."""
    null = torch.full_like(labels, null_label)
    both = model(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([labels, null]))
    cond, uncond = both.chunk(2)
    return cond, uncond


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
    cond, uncond = conditional_pair(model, x_t, t, labels, null_label)
    return uncond + guidance_scale * (cond - uncond)


def _sample_dims(x: torch.Tensor) -> tuple[int, ...]:
    return tuple(range(1, x.ndim))


def rescaled_guidance(
    cond: torch.Tensor, uncond: torch.Tensor, scale: float | torch.Tensor, phi: float
) -> torch.Tensor:
    """CFG whose result keeps the conditional prediction's per-sample std (Lin et al. 2024, Sec. 3.4, Alg. 2).

        x_cfg = x_uncond + s (x_cond - x_uncond)
        x_rescaled = x_cfg * std(x_cond) / std(x_cfg)          (std over each sample's elements)
        x = phi x_rescaled + (1 - phi) x_cfg                   (paper: phi = 0.7)

    Pass denoised predictions x0. The paper's motive is the predicted image, whose std a high scale inflates
    (its over-exposure); its model predicts v. eps, v and x0 are affine in one another at fixed x_t, but a
    std ratio is not kept by an affine map, so the space matters: in eps space at high noise both stds are
    ~1 (eps ~ x_t / sqrt(1 - abar)) and the rescale would barely act. phi = 0 is plain CFG; s = 1 returns
    x_cond (up to rounding).
    """
    guided = uncond + scale * (cond - uncond)
    dims = _sample_dims(guided)
    rescaled = guided * (cond.std(dim=dims, keepdim=True) / guided.std(dim=dims, keepdim=True))
    return phi * rescaled + (1 - phi) * guided


def projected_guidance(
    cond: torch.Tensor,
    uncond: torch.Tensor,
    scale: float | torch.Tensor,
    eta: float = 0.0,
    norm_threshold: float | None = None,
    update: torch.Tensor | None = None,
) -> torch.Tensor:
    """Adaptive projected guidance, APG (Sadat et al. 2024, "Eliminating Oversaturation and Artifacts of High
    Guidance Scales in Diffusion Models", arXiv 2410.02416, Sec. 4).

    On denoised predictions D (x0), with the CFG update dD = D_cond - D_uncond (or `update`, the same after
    `GuidanceMomentum`):
        dD <- dD * min(1, r / ||dD||)                         (norm threshold r; None = no cap)
        dD_par = (<dD, D_cond> / <D_cond, D_cond>) D_cond,  dD_orth = dD - dD_par
        D = D_cond + (s - 1) (dD_orth + eta dD_par)           (paper default eta = 0)
    Norms and inner products are per sample. The paper finds the parallel part behind the over-saturation
    and the orthogonal part behind the gain in quality. eta = 1 with no threshold and no momentum is plain
    CFG (D_cond + (s - 1) dD = D_uncond + s dD); s = 1 returns D_cond exactly.
    """
    dims = _sample_dims(cond)
    delta = cond - uncond if update is None else update
    if norm_threshold is not None:
        norm = torch.linalg.vector_norm(delta, dim=dims, keepdim=True)
        delta = delta * torch.clamp(norm_threshold / norm, max=1.0)
    unit = cond / torch.linalg.vector_norm(cond, dim=dims, keepdim=True).clamp_min(torch.finfo(cond.dtype).tiny)
    parallel = (delta * unit).sum(dim=dims, keepdim=True) * unit
    return cond + (scale - 1) * (delta - parallel + eta * parallel)


class GuidanceMomentum:
    """APG's momentum over one sampler run (Sadat et al. 2024, Sec. 4): dD_avg <- dD + beta dD_avg, then dD_avg
    replaces dD. beta < 0 (the paper's choice) subtracts part of the previous update. One per sampler run:
    it holds state, updated on every call (a multistep sampler calls once per step) and only for the samples
    `inside` the guidance interval, so each sample's sequence is independent of the batch it runs in."""

    def __init__(self, beta: float):
        self.beta = beta
        self.average: torch.Tensor | None = None

    def __call__(self, delta: torch.Tensor, inside: torch.Tensor | None = None) -> torch.Tensor:
        if self.average is None:
            self.average = torch.zeros_like(delta)
        if self.average.shape != delta.shape:
            raise ValueError("APG momentum holds one sampler run's state: build a new eps_fn for every run")
        updated = delta + self.beta * self.average
        self.average = updated if inside is None else torch.where(inside, updated, self.average)
        return self.average


@dataclass(frozen=True)
class Guidance:
    """How the conditional and unconditional predictions combine: the method and its options (the sampler
    config's fields of the same names are derived from these)."""

    guidance_method: GuidanceMethod = "cfg_rescale"  # cfg (Ho & Salimans 2022), cfg_rescale (Lin et al. 2024, Sec. 3.4) or apg (Sadat et al. 2024), inside guidance_interval
    guidance_rescale: float = Field(0.7, ge=0.0, le=1.0)  # cfg_rescale: phi, the weight of the std-matched x0 (0 = plain CFG)
    apg_eta: float = Field(0.0, ge=0.0, le=1.0)  # apg: weight of the update's component parallel to D_cond (1 = plain CFG)
    apg_norm_threshold: float | None = Field(None, gt=0.0, le=1e6)  # apg: cap r on the update's per-sample L2 norm in scaled-latent x0; None = no cap
    apg_momentum: float = Field(0.0, gt=-1.0, lt=1.0)  # apg: beta of the running update over one sampler run (paper: negative); 0 = none
    autoguidance_scale: float = Field(2.0, ge=1.0, le=10.0)  # a: the conditional prediction becomes a D + (1 - a) D_guide, the guide an early snapshot of the model (Karras et al. 2024); 1 = off

    @property
    def on_x0(self) -> bool:
        """Whether the method combines denoised predictions (cfg combines the raw output, in any space)."""
        return self.guidance_method != "cfg"

    def momentum(self) -> GuidanceMomentum | None:
        """A fresh momentum state for one sampler run, or None when the method has none."""
        return GuidanceMomentum(self.apg_momentum) if self.guidance_method == "apg" and self.apg_momentum != 0 else None

    def combine_x0(self, cond: torch.Tensor, uncond: torch.Tensor, scale: float | torch.Tensor,
                   momentum: GuidanceMomentum | None = None, inside: torch.Tensor | None = None) -> torch.Tensor:
        """The guided x0 from the conditional and unconditional x0 predictions."""
        if self.guidance_method == "cfg_rescale":
            return rescaled_guidance(cond, uncond, scale, self.guidance_rescale)
        if self.guidance_method == "apg":
            update = None if momentum is None else momentum(cond - uncond, inside)
            return projected_guidance(cond, uncond, scale, self.apg_eta, self.apg_norm_threshold, update)
        return uncond + scale * (cond - uncond)


CFG = Guidance("cfg", autoguidance_scale=1.0)  # plain classifier-free guidance


def autoguided(model: ModelFn, guide: ModelFn, null_label: int, scale: float) -> ModelFn:
    """`model` with every conditional row extrapolated away from `guide`: a D(x|c) + (1 - a) D_guide(x|c).

    Autoguidance (Karras et al. 2024, "Guiding a Diffusion Model with a Bad Version of Itself", eq. 2): the guide
    is a weaker model of the same kind (here an early EMA snapshot of the same run), whose errors point the same
    way as the model's, only further. Rows with the null label (the unconditional half of CFG) pass through, so
    classifier-free guidance then acts on the autoguided conditional prediction. Costs the guide's forward on the
    conditional rows: three network rows per guided sample instead of two.
    """
    def network(x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        out = model(x, t, labels)
        if labels is None or scale == 1.0:
            return out
        rows = labels != null_label
        out = out.clone()
        out[rows] = scale * out[rows] + (1.0 - scale) * guide(x[rows], t[rows], labels[rows]).to(out.dtype)
        return out

    return network
