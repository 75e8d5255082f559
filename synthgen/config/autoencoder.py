"""Params of the KL autoencoder stage (Rombach et al. 2022): network, losses, training, scale factor."""
from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, model_validator

from synthgen.config.base import Section, unkeyed
from synthgen.config.training import TrainConfig


class AutoencoderModelConfig(Section):
    """Encoder/decoder shape; this section alone rebuilds the network from its weights."""

    in_channels: int = Field(3, ge=1, le=4)  # image channels
    base_channels: int = Field(16, ge=4, le=1024)  # width of the full-resolution level
    channel_mult: tuple[int, ...] = Field((1, 2), min_length=1, max_length=4)  # width per level = base * mult; one level per factor 2 of downsampling, plus one
    num_res_blocks: int = Field(1, ge=1, le=4)  # ResNet blocks per encoder level (the decoder has one more, as in LDM)
    downsample: Literal[1, 2, 4, 8] = 2  # spatial downsampling factor f: latents are (H/f, W/f)
    latent_channels: int = Field(4, ge=1, le=64)  # channels c of the latent z
    attention: bool = False  # single-head self-attention at the bottleneck of encoder and decoder
    norm_groups: int = Field(8, ge=1, le=64)  # GroupNorm groups; must divide every level width

    @property
    def widths(self) -> tuple[int, ...]:
        return tuple(self.base_channels * m for m in self.channel_mult)

    @model_validator(mode="after")
    def _check_levels(self) -> AutoencoderModelConfig:
        levels = int(math.log2(self.downsample)) + 1
        if len(self.channel_mult) != levels:
            raise ValueError(
                f"channel_mult has {len(self.channel_mult)} levels; downsample={self.downsample} needs exactly {levels}"
            )
        if any(m < 1 for m in self.channel_mult):
            raise ValueError(f"channel_mult entries must be >= 1, got {self.channel_mult}")
        bad = [w for w in self.widths if w % self.norm_groups]
        if bad:
            raise ValueError(f"norm_groups={self.norm_groups} must divide every level width; {bad} do not")
        return self


# About 2.5 minutes on an idle 2-core CPU for 32 px shapes, val PSNR ~35 dB. 1,200 steps gave 31 dB
# and rounded the polygons' corners, which no diffusion model trained on those latents can restore.
DEFAULT_TRAIN = TrainConfig(
    steps=3000, batch_size=16, lr=2e-3, warmup_steps=50, grad_clip=1.0, ema_decay=0.999,
    checkpoint_every=1000, log_every=20, cpu_threads=0, cpu_bf16=True,
)


class AutoencoderConfig(Section):
    """The autoencoder stage: network, training loop, loss terms and the latent scale factor."""

    model: AutoencoderModelConfig = AutoencoderModelConfig()  # network shape
    train: TrainConfig = unkeyed(DEFAULT_TRAIN)  # optimizer, steps, checkpoints (defaults sized for 32 px on a CPU)
    reconstruction: Literal["l1", "l2"] = "l1"  # pixel reconstruction loss
    kl_weight: float = Field(1e-6, ge=0.0, le=1.0)  # weight of KL per image against the per-image summed reconstruction error (LDM)
    discriminator: bool = False  # add the PatchGAN hinge loss (Isola et al. 2017; Esser et al. 2021)
    disc_start: int = Field(0, ge=0)  # step at which the discriminator and its loss switch on
    disc_weight: float = Field(0.5, ge=0.0, le=100.0)  # multiplies the adaptive GAN weight (Esser et al. 2021, eq. 7)
    disc_channels: int = Field(64, ge=8, le=1024)  # width of the discriminator's first conv
    disc_layers: int = Field(2, ge=1, le=5)  # stride-2 conv layers of the PatchGAN (3 for 256 px)
    scale_sample_size: int = Field(4096, ge=16, le=10_000_000)  # training images encoded to estimate the latent std (all if fewer)
    eval_batch_size: int = Field(256, ge=1, le=65_536)  # images per forward pass when encoding and evaluating
    recon_images: int = Field(32, ge=1, le=256)  # validation images shown in recon.png (beside their reconstructions)
