"""Reconstruction quality per image: PSNR and SSIM of images in [-1, 1], shape (N, C, H, W)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB, per image: 10 log10(peak^2 / MSE), peak = 2 for [-1, 1]."""
    mse = (x.float() - y.float()).pow(2).flatten(1).mean(dim=1)
    return 10.0 * torch.log10(4.0 / mse.clamp_min(1e-12))


def gaussian_window(size: int, sigma: float, device: torch.device) -> torch.Tensor:
    t = torch.arange(size, device=device, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-t.pow(2) / (2 * sigma**2))
    return g / g.sum()


def ssim(x: torch.Tensor, y: torch.Tensor, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Structural similarity per image (Wang et al. 2004, eq. 13): Gaussian 11x11 window, sigma 1.5,
    K1 = 0.01, K2 = 0.03, on [0, 1] intensities, averaged over valid positions and channels.
    The window shrinks to the image size for images smaller than 11 pixels."""
    x, y = (x.float() + 1) / 2, (y.float() + 1) / 2
    window = min(window, x.shape[-1], x.shape[-2])
    channels = x.shape[1]
    g = gaussian_window(window, sigma, x.device)
    kernel = (g[:, None] * g[None, :]).expand(channels, 1, window, window)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, kernel, groups=channels)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x.pow(2)
    var_y = blur(y * y) - mu_y.pow(2)
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x.pow(2) + mu_y.pow(2) + c1) * (var_x + var_y + c2))
    return s.flatten(1).mean(dim=1)


def quantize(x: torch.Tensor) -> torch.Tensor:
    """Round images in [-1, 1] to the 256 levels they take once saved as uint8."""
    return ((x.float().clamp(-1, 1) + 1) * 127.5).round() / 127.5 - 1
