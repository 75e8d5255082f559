"""Training objective of the KL autoencoder (Rombach et al. 2022, Sec. 3.1 and App. G).

loss = rec + kl_weight * KL / D  [+ lambda * L_GAN]
where rec is the per-pixel L1 (or L2) error, KL is per image and D the pixels x channels of an
image: the same balance as LDM's per-image sums, divided by D so the loss is a per-pixel mean.
"""
from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from synthgen.config.autoencoder import AutoencoderConfig
from synthgen.training.loop import MAIN, frozen

DISC = "disc"  # name of the discriminator in the loop's `nets`


def reconstruction_error(x: torch.Tensor, recon: torch.Tensor, kind: str) -> torch.Tensor:
    """Mean per-element |x - x^| (l1) or (x - x^)^2 (l2)."""
    diff = x - recon.float()
    return diff.abs().mean() if kind == "l1" else diff.pow(2).mean()


def hinge_d_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """Discriminator hinge loss (Lim & Ye 2017; as in Esser et al. 2021): 1/2 (E relu(1-D(x)) + E relu(1+D(x^)))."""
    return 0.5 * (F.relu(1.0 - logits_real.float()).mean() + F.relu(1.0 + logits_fake.float()).mean())


def hinge_g_loss(logits_fake: torch.Tensor) -> torch.Tensor:
    """Generator side of the hinge GAN: -E D(x^)."""
    return -logits_fake.float().mean()


def adaptive_gan_weight(rec_loss: torch.Tensor, g_loss: torch.Tensor, last_layer: torch.Tensor,
                        delta: float = 1e-4) -> torch.Tensor:
    """lambda = ||grad_GL[L_rec]|| / (||grad_GL[L_GAN]|| + delta), clipped to [0, 1e4] and detached,
    GL being the decoder's last layer (Esser et al. 2021, "Taming Transformers", eq. 7)."""
    rec_grad = torch.autograd.grad(rec_loss, last_layer, retain_graph=True)[0]
    g_grad = torch.autograd.grad(g_loss, last_layer, retain_graph=True)[0]
    return (rec_grad.norm() / (g_grad.norm() + delta)).clamp(0.0, 1e4).detach()


class AutoencoderObjective:
    """The training objective the loop calls: reconstruction + KL, plus the PatchGAN once it starts.

    Uses `batch["pixels"]`, uint8 (N, C, H, W). The GAN terms start at `cfg.disc_start`; before
    that the discriminator gets no loss and is not stepped.
    """

    def __init__(self, cfg: AutoencoderConfig, last_layer: torch.Tensor):
        self.cfg = cfg
        self.last_layer = last_layer  # the unwrapped decoder output weight (adaptive weight reads its gradient)

    def gan_active(self, step: int) -> bool:
        return self.cfg.discriminator and step >= self.cfg.disc_start

    def __call__(self, nets: Mapping[str, nn.Module], batch: dict[str, torch.Tensor], generator: torch.Generator,
                 step: int) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        x = batch["pixels"].float() / 127.5 - 1.0
        recon, posterior = nets[MAIN](x, generator)
        rec = reconstruction_error(x, recon, self.cfg.reconstruction)
        kl = posterior.kl().mean()
        loss = rec + self.cfg.kl_weight * kl / x[0].numel()
        zero = torch.zeros((), device=x.device)
        logs = {"rec": rec, "kl": kl, "g_loss": zero, "d_loss": zero, "gan_weight": zero}
        if not self.gan_active(step):
            return {MAIN: loss}, logs
        # 1) generator side: the discriminator judges x^ without learning from it
        with frozen(nets[DISC]) as disc:
            g_loss = hinge_g_loss(disc(recon))
        weight = self.cfg.disc_weight * adaptive_gan_weight(rec, g_loss, self.last_layer)
        # 2) discriminator side: real images against detached reconstructions, in one pass
        logits_real, logits_fake = nets[DISC](torch.cat([x, recon.detach().float()])).chunk(2)
        d_loss = hinge_d_loss(logits_real, logits_fake)
        logs.update(g_loss=g_loss.detach(), d_loss=d_loss.detach(), gan_weight=weight)
        return {MAIN: loss + weight * g_loss, DISC: d_loss}, logs
