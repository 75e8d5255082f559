"""PatchGAN discriminator (Isola et al. 2017, "Image-to-Image Translation with Conditional Adversarial
Networks"), as used for the VQGAN and LDM autoencoders (Esser et al. 2021; Rombach et al. 2022).

GroupNorm replaces the original BatchNorm so the network has no running statistics: its output does
not depend on the other images in the batch, and DDP has no buffers to broadcast.
"""
from __future__ import annotations

import torch
from torch import nn


def conv_norm_act(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 4, stride, 1, bias=False),
        nn.GroupNorm(min(32, c_out // 4), c_out),
        nn.LeakyReLU(0.2),
    )


class PatchDiscriminator(nn.Module):
    """Images (N, C, H, W) in [-1, 1] to a map of real/fake logits, one per overlapping patch."""

    def __init__(self, in_channels: int = 3, channels: int = 64, layers: int = 3):
        super().__init__()
        blocks: list[nn.Module] = [nn.Conv2d(in_channels, channels, 4, 2, 1), nn.LeakyReLU(0.2)]
        c = channels
        for i in range(1, layers):
            blocks.append(conv_norm_act(c, channels * min(2**i, 8), stride=2))
            c = channels * min(2**i, 8)
        blocks.append(conv_norm_act(c, channels * min(2**layers, 8), stride=1))
        blocks.append(nn.Conv2d(channels * min(2**layers, 8), 1, 4, 1, 1))
        self.net = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
