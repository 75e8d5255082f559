"""Stage `encode_latents`: encode the train split once, so diffusion training never runs the encoder.

Writes the latent store (`synthgen.autoencoder.latent_store`): the posterior mean/std and label of
every train image, with the scale factor and sha256 of the autoencoder that made them.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from synthgen.autoencoder.latent_store import label_tensor, write_latents
from synthgen.autoencoder.pixels import check_pixels
from synthgen.autoencoder.scale import encode_moments
from synthgen.autoencoder.trained import load_autoencoder
from synthgen.config.autoencoder import AutoencoderConfig
from synthgen.errors import SynthgenError
from synthgen.outputs import writes
from synthgen.shards import read_arrays
from synthgen.stages.layout import AutoencoderLayout, PreparedLayout
from synthgen.training.distributed import resolve_device


@torch.no_grad()
def encode_latents(model_dir: str | Path, pixels: np.ndarray, labels: np.ndarray, out_dir: str | Path,
                   batch_size: int = 256, device: str = "auto", per_shard: int = 50_000) -> dict[str, Any]:
    """Encode uint8 images (N, H, W, C) once into a latent folder (see latent_store); return its index."""
    trained = load_autoencoder(model_dir, resolve_device(device))
    check_pixels(pixels, "pixels", trained.config.in_channels, trained.config.downsample)
    if len(pixels) == 0 or len(labels) != len(pixels):
        raise SynthgenError(f"need at least one image and one label per image; got {len(pixels)} images, {len(labels)} labels")
    device_ = next(trained.model.parameters()).device
    mean, std = encode_moments(trained.model, pixels, batch_size, device_)
    return write_latents(out_dir, mean, std, label_tensor(labels), trained.scale_factor, trained.sha256, per_shard)


@dataclass(frozen=True)
class Inputs:
    prepared: PreparedLayout
    autoencoder: AutoencoderLayout


@writes("encode_latents")
def run(cfg: AutoencoderConfig, inputs: Inputs, out: Path) -> dict[str, Any]:
    """The stage: the prepared train split through the trained encoder into the latent store `out`."""
    pixels, labels, _ = read_arrays(inputs.prepared.split("train"))
    return encode_latents(inputs.autoencoder.root, pixels, labels, out, batch_size=cfg.eval_batch_size,
                          device=cfg.train.device)
