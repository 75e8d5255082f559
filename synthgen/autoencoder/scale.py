"""Encoding pixel arrays batch by batch, and the latent scale factor of latent diffusion."""
from __future__ import annotations

import numpy as np
import torch

from synthgen.imaging import from_uint8
from synthgen.models.autoencoder import Autoencoder
from synthgen.seeds import derive_seed


@torch.no_grad()
def encode_moments(model: Autoencoder, pixels: np.ndarray, batch_size: int,
                   device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior mean and std (float32, CPU) of uint8 images (N, H, W, C), in eval mode."""
    was_training = model.training
    model.eval()
    means, stds = [], []
    for start in range(0, len(pixels), batch_size):
        posterior = model.encode(from_uint8(pixels[start : start + batch_size]).to(device))
        means.append(posterior.mean.cpu())
        stds.append(posterior.std.cpu())
    model.train(was_training)
    return torch.cat(means), torch.cat(stds)


def latent_std(mean: torch.Tensor, std: torch.Tensor, generator: torch.Generator) -> float:
    """std(z) over posterior samples z = mean + std * eps, all elements pooled."""
    z = mean + std * torch.randn(mean.shape, generator=generator)
    return z.flatten().std().item()


def estimate_scale_factor(model: Autoencoder, pixels: np.ndarray, sample_size: int, seed: int,
                          batch_size: int, device: torch.device) -> float:
    """scale_factor = 1 / std(z) over a fixed, seeded sample of `sample_size` training images (all if
    fewer), so z * scale_factor has unit variance (Rombach et al. 2022, latent rescaling of the KL
    models; diffusion-math.md Sec. 4)."""
    g = torch.Generator().manual_seed(derive_seed(seed, "autoencoder/scale_factor"))
    count = min(sample_size, len(pixels))
    chosen = torch.randperm(len(pixels), generator=g)[:count].sort().values.numpy()
    mean, std = encode_moments(model, pixels[chosen], batch_size, device)
    return 1.0 / latent_std(mean, std, g)
