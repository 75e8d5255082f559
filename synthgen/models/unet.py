"""Class-conditional UNet denoiser for latents (Ho et al. 2020; ADM of Dhariwal & Nichol 2021).

forward(x_t, t, labels) -> prediction of x_t's shape. No host syncs and no data-dependent Python
branches in forward, so torch.compile(fullgraph=True) and CUDA graphs can capture it.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from synthgen.config.diffusion import UNetConfig
from synthgen.models.autoencoder import Upsample


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of (B,) timesteps to (B, dim) (Vaswani et al. 2017, Sec. 3.5; Ho et al. 2020, App. B)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = t.float()[:, None] * freqs[None]
    embedding = torch.cat([torch.cos(angles), torch.sin(angles)], dim=1)
    return F.pad(embedding, (0, dim % 2))


def zero_init(module: nn.Module) -> nn.Module:
    """Zero a layer's parameters so a residual branch starts as the identity (ADM)."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, conditioned on the embedding (ADM, with optional scale-shift norm)."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, groups: int, dropout: float, scale_shift: bool):
        super().__init__()
        self.scale_shift = scale_shift
        self.norm1 = nn.GroupNorm(groups, in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb = nn.Linear(emb_dim, out_ch * (2 if scale_shift else 1))
        self.norm2 = nn.GroupNorm(groups, out_ch)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = zero_init(nn.Conv2d(out_ch, out_ch, 3, padding=1))
        self.skip = nn.Identity() if in_ch == out_ch else nn.Conv2d(in_ch, out_ch, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        e = self.emb(F.silu(emb))[:, :, None, None]
        if self.scale_shift:
            scale, shift = e.chunk(2, dim=1)
            h = self.norm2(h) * (1 + scale) + shift
        else:
            h = self.norm2(h + e)
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class SelfAttention(nn.Module):
    """Multi-head self-attention over the H*W positions, residual (ADM; scaled_dot_product_attention)."""

    def __init__(self, channels: int, head_channels: int, groups: int):
        super().__init__()
        self.heads = channels // head_channels
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = zero_init(nn.Conv2d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w).unbind(1)
        out = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
        return x + self.proj(out.transpose(-1, -2).reshape(b, c, h, w))


class Downsample(nn.Module):
    """Stride-2 3x3 convolution."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Stage(nn.Module):
    """A ResBlock optionally followed by self-attention: one entry of the UNet's down or up path."""

    def __init__(self, in_ch: int, out_ch: int, attention: bool, config: UNetConfig, emb_dim: int):
        super().__init__()
        groups = config.norm_groups
        self.res = ResBlock(in_ch, out_ch, emb_dim, groups, config.dropout, config.scale_shift_norm)
        self.attn = SelfAttention(out_ch, config.attention_head_channels, groups) if attention else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        return self.attn(self.res(x, emb))


class UNet(nn.Module):
    """Class-conditional UNet (Ronneberger et al. 2015 as used by Ho et al. 2020 and Dhariwal & Nichol 2021).

    Labels index an embedding of num_classes + 1 rows; index num_classes is the null class of
    classifier-free guidance (Ho & Salimans 2022). With num_classes = 0 the model is unconditional
    and labels are ignored.
    """

    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = config
        base, emb_dim = config.base_channels, 4 * config.base_channels
        self.null_label = config.num_classes
        self.time_mlp = nn.Sequential(nn.Linear(base, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.class_embed = nn.Embedding(config.num_classes + 1, emb_dim) if config.num_classes > 0 else None
        # self-conditioning: the latent, then the previous x0 estimate, along channels
        self.conv_in = nn.Conv2d(config.in_channels * (2 if config.self_conditioning else 1), base, 3, padding=1)

        # 1) down path: num_res_blocks stages per level, then downsample (not after the last level)
        self.down = nn.ModuleList()
        skip_channels, ch = [base], base
        levels = list(zip(config.channel_mult, config.level_resolutions))
        for level, (mult, res) in enumerate(levels):
            for _ in range(config.num_res_blocks):
                self.down.append(Stage(ch, base * mult, res in config.attention_resolutions, config, emb_dim))
                ch = base * mult
                skip_channels.append(ch)
            if level < len(levels) - 1:
                self.down.append(Downsample(ch))
                skip_channels.append(ch)

        # 2) middle: ResBlock, attention, ResBlock
        self.mid1 = Stage(ch, ch, True, config, emb_dim)
        self.mid2 = Stage(ch, ch, False, config, emb_dim)

        # 3) up path: num_res_blocks + 1 stages per level, each eating one skip, then upsample
        self.up = nn.ModuleList()
        for level, (mult, res) in reversed(list(enumerate(levels))):
            for _ in range(config.num_res_blocks + 1):
                in_ch = ch + skip_channels.pop()
                self.up.append(Stage(in_ch, base * mult, res in config.attention_resolutions, config, emb_dim))
                ch = base * mult
            if level > 0:
                self.up.append(Upsample(ch))

        self.out = nn.Sequential(
            nn.GroupNorm(config.norm_groups, ch),
            nn.SiLU(),
            zero_init(nn.Conv2d(ch, config.in_channels, 3, padding=1)),
        )

    def embed(self, t: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """Time embedding (sinusoidal then MLP) plus the class embedding."""
        emb = self.time_mlp(timestep_embedding(t, self.config.base_channels))
        if self.class_embed is None:
            return emb
        if labels is None:
            raise ValueError("this UNet is class-conditional: pass labels (use the null class for unconditional)")
        return emb + self.class_embed(labels)

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        emb = self.embed(t, labels)
        h = self.conv_in(x)
        skips = [h]
        for block in self.down:
            h = block(h) if isinstance(block, Downsample) else block(h, emb)
            skips.append(h)
        h = self.mid2(self.mid1(h, emb), emb)
        for block in self.up:
            h = block(h) if isinstance(block, Upsample) else block(torch.cat([h, skips.pop()], dim=1), emb)
        return self.out(h)

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
