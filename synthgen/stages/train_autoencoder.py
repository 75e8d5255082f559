"""Stage `train_autoencoder`: train the KL autoencoder, evaluate it, and write its folder.

`train_autoencoder` writes into `out_dir` (named by `AutoencoderLayout` and `autoencoder.trained`):
  model.safetensors (+ .manifest.json)  weights (the EMA when train.ema_decay > 0)
  config.json, scale_factor             what `load_autoencoder` needs to rebuild it
  metrics.json                          on validation images: psnr (dB), ssim, l1 (mean |x - x^| on the
                                        [-1, 1] scale), kl (nats per image), latent_std_scaled (std of
                                        scale_factor * z, about 1); reconstructions from the posterior
                                        mean, rounded to uint8 levels
  metrics.csv                           per-step training metrics (x = step)
  recon.png                             validation images, each row followed by its reconstructions
  checkpoints/                          training checkpoints; a re-run resumes from the newest
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from synthgen.atomic import atomic_write_json
from synthgen.autoencoder.losses import DISC, AutoencoderObjective
from synthgen.autoencoder.pixels import check_pixels
from synthgen.autoencoder.quality import psnr, quantize, ssim
from synthgen.autoencoder.scale import encode_moments, estimate_scale_factor, latent_std
from synthgen.autoencoder.trained import write_trained
from synthgen.config.autoencoder import AutoencoderConfig
from synthgen.errors import SynthgenError
from synthgen.imaging import from_uint8, save_grid, to_uint8
from synthgen.models.autoencoder import Autoencoder
from synthgen.models.discriminator import PatchDiscriminator
from synthgen.outputs import writes
from synthgen.seeds import derive_seed
from synthgen.shards import read_arrays
from synthgen.stages.layout import AutoencoderLayout, PreparedLayout
from synthgen.training.distributed import cpu_threads, resolve_device
from synthgen.training.loop import MAIN, TrainResult, train
from synthgen.training.rng import seeded_cpu_rng

log = logging.getLogger(__name__)

RECON_ROW = 8  # images per row of recon.png
RECON_MIN_PIXELS = 128  # recon.png enlarges each image to at least this many pixels a side


def build_networks(cfg: AutoencoderConfig) -> dict[str, torch.nn.Module]:
    """The autoencoder, and the PatchGAN when enabled, initialised from train.seed."""
    with seeded_cpu_rng(derive_seed(cfg.train.seed, "autoencoder/init")):
        nets: dict[str, torch.nn.Module] = {MAIN: Autoencoder(cfg.model)}
        if cfg.discriminator:
            nets[DISC] = PatchDiscriminator(cfg.model.in_channels, cfg.disc_channels, cfg.disc_layers)
    return nets


@torch.no_grad()
def reconstruct(model: Autoencoder, pixels: np.ndarray, batch_size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Reconstructions (from the posterior mean) and per-image KL of uint8 images, on the CPU."""
    recons, kls = [], []
    for start in range(0, len(pixels), batch_size):
        recon, posterior = model(from_uint8(pixels[start : start + batch_size]).to(device))
        recons.append(recon.float().cpu())
        kls.append(posterior.kl().cpu())
    return torch.cat(recons), torch.cat(kls)


def evaluate(model: Autoencoder, pixels: np.ndarray, scale_factor: float, cfg: AutoencoderConfig,
             device: torch.device) -> tuple[dict[str, float], torch.Tensor]:
    """Quality of the quantized reconstructions and the std of scaled posterior samples; also the reconstructions."""
    model.eval()
    recon, kl = reconstruct(model, pixels, cfg.eval_batch_size, device)
    x, y = from_uint8(pixels), quantize(recon)
    mean, std = encode_moments(model, pixels, cfg.eval_batch_size, device)
    g = torch.Generator().manual_seed(derive_seed(cfg.train.seed, "autoencoder/eval"))
    metrics = {
        "psnr": psnr(x, y).mean().item(),
        "ssim": ssim(x, y).mean().item(),
        "l1": (x - y).abs().mean().item(),
        "kl": kl.mean().item(),
        "latent_std_scaled": latent_std(mean * scale_factor, std * scale_factor, g),
    }
    return metrics, recon


def save_recon_grid(pixels: np.ndarray, recon: torch.Tensor, path: Path) -> None:
    """Rows of up to RECON_ROW images, each followed by a row of their reconstructions."""
    nrow = min(RECON_ROW, len(pixels))
    blank = np.full((-len(pixels) % nrow, *pixels.shape[1:]), 255, np.uint8)  # completes the last row
    originals, recons = np.concatenate([pixels, blank]), np.concatenate([to_uint8(recon), blank])
    rows = []
    for start in range(0, len(originals), nrow):
        rows += [originals[start : start + nrow], recons[start : start + nrow]]
    save_grid(np.concatenate(rows), path, nrow=nrow, scale=max(1, RECON_MIN_PIXELS // pixels.shape[1]))


def train_autoencoder(cfg: AutoencoderConfig, train_pixels: np.ndarray, train_labels: np.ndarray,
                      val_pixels: np.ndarray, out_dir: str | Path) -> dict[str, Any]:
    """Train the KL autoencoder on uint8 images (N, H, W, C), evaluate it on the validation images,
    and write the folder described in the module docstring. Returns a summary dict.

    `train_labels` are only checked against the images: the autoencoder is unconditional. Under
    torchrun every rank trains; only rank 0 evaluates and writes, the others return {"rank": r}.
    """
    out_dir = Path(out_dir)
    channels, factor = cfg.model.in_channels, cfg.model.downsample
    check_pixels(train_pixels, "train_pixels", channels, factor)
    if len(val_pixels):
        check_pixels(val_pixels, "val_pixels", channels, factor)
    if len(train_labels) != len(train_pixels):
        raise SynthgenError(f"{len(train_labels)} train labels for {len(train_pixels)} train images")
    # 1) train (resumes from out_dir/checkpoints when present)
    nets = build_networks(cfg)
    objective = AutoencoderObjective(cfg, nets[MAIN].last_layer)
    data = {"pixels": torch.from_numpy(np.ascontiguousarray(train_pixels)).permute(0, 3, 1, 2).contiguous()}
    result = train(cfg.train, nets, objective, data, out_dir / "checkpoints", out_dir / "metrics.csv",
                   run_config=cfg.key_dump())
    if result.rank != 0:
        return {"rank": result.rank}
    # 2) scale factor, evaluation, outputs
    with cpu_threads(cfg.train.cpu_threads):
        return evaluate_and_write(cfg, result, train_pixels, val_pixels, out_dir)


def evaluate_and_write(cfg: AutoencoderConfig, result: TrainResult, train_pixels: np.ndarray, val_pixels: np.ndarray,
           out_dir: Path) -> dict[str, Any]:
    """Scale factor, validation metrics and every output file of the trained autoencoder."""
    start = time.perf_counter()
    device = resolve_device(cfg.train.device)
    model = result.final_model.to(device).eval()
    scale = estimate_scale_factor(model, train_pixels, cfg.scale_sample_size, cfg.train.seed, cfg.eval_batch_size, device)
    eval_split, eval_pixels = ("val", val_pixels) if len(val_pixels) else ("train", train_pixels[: cfg.scale_sample_size])
    if eval_split == "train":
        log.warning("no validation images: the metrics are measured on training images")
    metrics, recon = evaluate(model, eval_pixels, scale, cfg, device)
    metrics = {**metrics, "scale_factor": scale, "eval_split": eval_split, "eval_images": len(eval_pixels)}
    digest = write_trained(out_dir, model.cpu(), cfg, scale)
    layout = AutoencoderLayout(out_dir)
    atomic_write_json(layout.metrics, metrics)
    shown = min(cfg.recon_images, len(eval_pixels))
    save_recon_grid(eval_pixels[:shown], recon[:shown], layout.recon)
    return {**metrics, "steps": result.step, "resumed_from": result.resumed_from,
            "train_seconds": result.seconds, "images_per_s": result.images_per_s,
            "eval_seconds": time.perf_counter() - start, "model_sha256": digest, "out_dir": str(out_dir)}


@dataclass(frozen=True)
class Inputs:
    prepared: PreparedLayout


@writes("train_autoencoder")
def run(cfg: AutoencoderConfig, inputs: Inputs, out: Path) -> dict[str, Any]:
    """The stage: train on the prepared train split, evaluate on val, write `out`."""
    train_pixels, train_labels, _ = read_arrays(inputs.prepared.split("train"))
    val_pixels, _, _ = read_arrays(inputs.prepared.split("val"))
    return train_autoencoder(cfg, train_pixels, train_labels, val_pixels, out)
