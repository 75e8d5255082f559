"""KL-regularised convolutional autoencoder of latent diffusion (Rombach et al. 2022, Sec. 3.1, App. G).

The encoder maps images (N, 3, H, W) in [-1, 1] to a diagonal-Gaussian posterior over latents
(N, c, H/f, W/f); the decoder maps latents back to images. Blocks follow the LDM/VQGAN layout:
pre-activation ResNet blocks with GroupNorm and SiLU, strided-conv downsampling, nearest-neighbour
upsampling, and an optional single-head self-attention block at the bottleneck.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from synthgen.config.autoencoder import AutoencoderModelConfig


class DiagonalGaussian:
    """Posterior q(z|x) = N(mean, diag(exp(logvar))) (Kingma & Welling 2014)."""

    def __init__(self, moments: torch.Tensor):
        mean, logvar = moments.float().chunk(2, dim=1)
        self.mean = mean
        self.logvar = logvar.clamp(-30.0, 20.0)
        self.std = torch.exp(0.5 * self.logvar)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """z = mean + std * eps, eps ~ N(0, I) drawn from `generator` (reparameterisation trick)."""
        eps = torch.randn(self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype)
        return self.mean + self.std * eps

    def mode(self) -> torch.Tensor:
        return self.mean

    def kl(self) -> torch.Tensor:
        """KL(q || N(0, I)) per sample, summed over latent dims (Kingma & Welling 2014, App. B)."""
        return 0.5 * (self.mean.pow(2) + self.logvar.exp() - 1.0 - self.logvar).sum(dim=(1, 2, 3))


class ResnetBlock(nn.Module):
    """GroupNorm-SiLU-conv twice with a residual connection; 1x1 skip when the width changes."""

    def __init__(self, c_in: int, c_out: int, groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.norm2 = nn.GroupNorm(groups, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Identity() if c_in == c_out else nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class AttentionBlock(nn.Module):
    """Single-head self-attention over all positions, with a residual connection."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(n, 3, 1, c, h * w).transpose(-1, -2).unbind(1)
        out = F.scaled_dot_product_attention(q, k, v)  # (n, 1, h*w, c)
        return x + self.proj(out.transpose(-1, -2).reshape(n, c, h, w))


class Downsample(nn.Module):
    """Halve the resolution with a stride-2 3x3 conv (asymmetric padding as in LDM)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    """Double the resolution: nearest-neighbour, then a 3x3 conv."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def bottleneck(channels: int, groups: int, attention: bool) -> nn.Sequential:
    """ResNet block, optional self-attention, ResNet block at the lowest resolution."""
    middle = AttentionBlock(channels, groups) if attention else nn.Identity()
    return nn.Sequential(ResnetBlock(channels, channels, groups), middle, ResnetBlock(channels, channels, groups))


class Encoder(nn.Module):
    """Images (N, C, H, W) to posterior moments (N, 2c, H/f, W/f): mean and log-variance."""

    def __init__(self, cfg: AutoencoderModelConfig):
        super().__init__()
        widths = cfg.widths
        g = cfg.norm_groups
        self.conv_in = nn.Conv2d(cfg.in_channels, widths[0], 3, padding=1)
        layers: list[nn.Module] = []
        c = widths[0]
        for level, width in enumerate(widths):
            for _ in range(cfg.num_res_blocks):
                layers.append(ResnetBlock(c, width, g))
                c = width
            if level < len(widths) - 1:
                layers.append(Downsample(c))
        self.down = nn.Sequential(*layers)
        self.mid = bottleneck(c, g, cfg.attention)
        self.norm_out = nn.GroupNorm(g, c)
        self.conv_out = nn.Conv2d(c, 2 * cfg.latent_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.mid(self.down(self.conv_in(x)))
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    """Latents (N, c, h, w) to images (N, C, h*f, w*f); `conv_out` is the layer the GAN weight reads."""

    def __init__(self, cfg: AutoencoderModelConfig):
        super().__init__()
        widths = cfg.widths[::-1]
        g = cfg.norm_groups
        c = widths[0]
        self.conv_in = nn.Conv2d(cfg.latent_channels, c, 3, padding=1)
        self.mid = bottleneck(c, g, cfg.attention)
        layers: list[nn.Module] = []
        for level, width in enumerate(widths):
            for _ in range(cfg.num_res_blocks + 1):
                layers.append(ResnetBlock(c, width, g))
                c = width
            if level < len(widths) - 1:
                layers.append(Upsample(c))
        self.up = nn.Sequential(*layers)
        self.norm_out = nn.GroupNorm(g, c)
        self.conv_out = nn.Conv2d(c, cfg.in_channels, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.up(self.mid(self.conv_in(z)))
        return self.conv_out(F.silu(self.norm_out(h)))


class Autoencoder(nn.Module):
    """KL autoencoder (Rombach et al. 2022): `encode` gives q(z|x), `decode` maps z back to pixels."""

    def __init__(self, cfg: AutoencoderModelConfig):
        super().__init__()
        self.config = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)

    def encode(self, x: torch.Tensor) -> DiagonalGaussian:
        f = self.config.downsample
        assert x.shape[-1] % f == 0 and x.shape[-2] % f == 0, (
            f"image size {tuple(x.shape[-2:])} must be divisible by the downsampling factor {f}"
        )
        return DiagonalGaussian(self.encoder(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, DiagonalGaussian]:
        """Reconstruct x from a posterior sample drawn with `generator` (None: the posterior mean)."""
        posterior = self.encode(x)
        z = posterior.mode() if generator is None else posterior.sample(generator)
        return self.decode(z), posterior

    @property
    def last_layer(self) -> torch.Tensor:
        """Weight of the decoder's output conv: the adaptive GAN weight compares gradients here."""
        return self.decoder.conv_out.weight
