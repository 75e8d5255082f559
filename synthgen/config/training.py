"""Params of the shared training loop (autoencoder, latent diffusion UNet, classifier)."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from synthgen.config.base import Section, Seed


class TrainConfig(Section):
    """AdamW with linear warmup, clipping, optional EMA, checkpoints and per-step metrics."""

    steps: int = Field(2000, ge=1, le=10_000_000)  # optimizer steps in total (a resumed run continues to this)
    batch_size: int = Field(64, ge=1, le=65_536)  # global batch; under torchrun each rank takes batch_size / world_size
    lr: float = Field(2e-4, gt=0.0, le=1.0)  # peak learning rate of every optimizer, reached after warmup
    warmup_steps: int = Field(100, ge=0)  # linear warmup from lr / warmup_steps to lr
    lr_decay: Literal["constant", "cosine"] = "constant"  # after warmup: constant, or a cosine down to lr / 10 at `steps`
    weight_decay: float = Field(0.0, ge=0.0, le=1.0)  # AdamW decoupled weight decay
    beta1: float = Field(0.9, ge=0.0, lt=1.0)  # AdamW first-moment decay
    beta2: float = Field(0.999, ge=0.0, lt=1.0)  # AdamW second-moment decay
    grad_clip: float = Field(1.0, ge=0.0)  # max global gradient norm per network; 0 = no clipping
    ema_decay: float = Field(0.0, ge=0.0, lt=1.0)  # EMA of the main network's weights; 0 = off
    checkpoint_every: int = Field(1000, ge=1)  # steps between checkpoints (one is always written at the end)
    keep_checkpoints: int = Field(2, ge=1, le=1000)  # newest checkpoints kept; older ones are deleted
    log_every: int = Field(50, ge=1)  # steps per metrics row (values are means over those steps)
    seed: Seed = 0  # seeds batch order, noise and weight init of the stage
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto = cuda when available
    cpu_threads: int = Field(0, ge=0, le=1024)  # torch intra-op threads; 0 = torch's default (use 1 on a busy shared CPU)
    bf16: bool = True  # bf16 autocast on CUDA
    cpu_bf16: bool = False  # also on CPUs with native bf16 (AVX512-BF16, AMX; ~1.4x faster); ignored on others
    compile: bool = False  # torch.compile the networks (CUDA; slow to start)
    channels_last: bool = False  # channels_last memory format for networks and 4-D batches (CUDA)
    progress: bool = True  # tqdm bar with loss and images/s on rank 0
