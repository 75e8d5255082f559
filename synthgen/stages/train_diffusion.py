"""Stage `train_diffusion`: fit the latent UNet on the stored latents, write the model folder.

`train_diffusion` writes into `out_dir` the files of `synthgen.ldm.trained` plus (named by `DiffusionLayout`):
  metrics.json   final loss, steps, images/s, and generated-latent statistics against the data latents
  metrics.csv    per-step training metrics (x = step)
  grid.png       one row per class, preview.images_per_class EMA samples each, decoded by the autoencoder
  checkpoints/   training checkpoints; a re-run resumes from the newest

It reads the latent store only (never images, never the encoder). Each step draws a fresh posterior
sample z = (mean + std * eps) * scale_factor (`latents: sample`, as LDM does): the autoencoder's
decoder was trained on such samples and the scale factor makes exactly them unit-variance, and the
draw augments a small dataset. `latents: mean` trains on mean * scale_factor instead.

The data fixes three network fields, which are filled in rather than checked: model.in_channels and
model.sample_size from the latent shape, model.num_classes = len(class_names) (unless 0, which keeps
the model unconditional). config.json records the resolved values.
"""
from __future__ import annotations

import csv
import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from pydantic import ValidationError
from torch import nn

from synthgen.atomic import atomic_write_json
from synthgen.autoencoder import LatentSet, TrainedAutoencoder, load_autoencoder, load_latents, scaled_latents
from synthgen.config.diffusion import DiffusionConfig
from synthgen.diffusion import DiffusionLoss, drop_labels
from synthgen.errors import SynthgenError
from synthgen.imaging import save_grid, to_uint8
from synthgen.ldm.trained import TrainedDiffusion, load_diffusion, write_trained
from synthgen.models.unet import UNet
from synthgen.outputs import writes
from synthgen.precision import bf16_autocast
from synthgen.seeds import derive_seed
from synthgen.stages.layout import AutoencoderLayout, DiffusionLayout, LatentsLayout, PreparedLayout
from synthgen.training.checkpoint import checkpoint_name, load_checkpoint
from synthgen.training.distributed import cpu_threads, resolve_device
from synthgen.training.loop import MAIN, train
from synthgen.training.rng import seeded_cpu_rng

log = logging.getLogger(__name__)

STATS_SAMPLES = 4096  # data latents the statistics are measured on (all if fewer)
EVAL_SAMPLES = 1024  # latents of the fixed-noise evaluation loss
BATCH = 256  # latents per forward pass outside training
GRID_MIN_PIXELS = 128  # grid.png enlarges each image to at least this many pixels a side


class DiffusionObjective:
    """One training step's loss: a latent per image, CFG label dropout, the weighted denoising loss.

    Randomness comes from the loop's generator only, in a fixed order (latent noise, label drops,
    then t and eps inside the `DiffusionLoss`), so a resumed run repeats the same draws.
    """

    def __init__(self, cfg: DiffusionConfig, scale_factor: float):
        self.cfg, self.scale_factor = cfg, scale_factor
        self.loss = DiffusionLoss.from_config(cfg)
        self.on_device: dict[torch.device, DiffusionLoss] = {}  # one copy per device: no transfer per step

    def loss_on(self, device: torch.device) -> DiffusionLoss:
        if device not in self.on_device:
            self.on_device[device] = self.loss.on(device)
        return self.on_device[device]

    def __call__(self, nets: Mapping[str, nn.Module], batch: dict[str, torch.Tensor], generator: torch.Generator,
                 step: int) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        cfg = self.cfg
        # 1) the latent: a posterior sample (or the mean), scaled to unit variance
        source = generator if cfg.latents == "sample" else None
        z = scaled_latents(batch["mean"], batch["std"], self.scale_factor, source)
        # 2) classifier-free guidance training: some labels become the null class (Ho & Salimans 2022, Alg. 1)
        labels = None
        if cfg.model.num_classes > 0:
            labels = drop_labels(batch["labels"], cfg.p_uncond, cfg.model.num_classes, generator)
        # 3) the weighted denoising loss (Ho et al. 2020, Alg. 1; Hang et al. 2023)
        loss = self.loss_on(z.device)(nets[MAIN], z, labels, generator)
        return {MAIN: loss}, {}


def resolve_config(cfg: DiffusionConfig, latent_shape: tuple[int, int, int], num_classes: int) -> DiffusionConfig:
    """`cfg` with the network's DERIVED fields taken from the data, validated again (one-line error if they clash)."""
    channels, height, width = latent_shape
    if height != width:
        raise SynthgenError(f"latents are {height}x{width}; the UNet needs square latents (use square images)")
    derived = cfg.model.derived_from_data(channels, height, num_classes)
    if disagreements := cfg.model.disagreements(derived):
        log.warning("diffusion.model: %s: taken from the data, which decides these", "; ".join(disagreements))
    filled = {**cfg.model.model_dump(), **derived}
    try:
        return DiffusionConfig.model_validate({**cfg.model_dump(), "model": filled})
    except ValidationError as e:
        first = e.errors()[0]
        key = ".".join(str(part) for part in first["loc"]) or "model"
        raise SynthgenError(f"diffusion.{key}: {first['msg'].removeprefix('Value error, ')} (with the data's latents "
                            f"{channels}x{height}x{width} and {num_classes} classes)") from None


def check_inputs(latents: LatentSet, autoencoder: TrainedAutoencoder, class_names: list[str]) -> None:
    """Refuse latents from another autoencoder, missing or duplicate class names, and labels out of range."""
    if latents.info.get("model_sha256") != autoencoder.sha256:
        raise SynthgenError(
            f"the latents were encoded by autoencoder {str(latents.info.get('model_sha256'))[:12]}..., but the "
            f"autoencoder folder holds {autoencoder.sha256[:12]}...; re-run encode_latents")
    if not class_names or len(set(class_names)) != len(class_names):
        raise SynthgenError(f"class_names must be non-empty and unique, got {class_names}")
    if len(latents) == 0:
        raise SynthgenError("the latent store holds no latents; encode a non-empty dataset")
    low, high = int(latents.labels.min()), int(latents.labels.max())
    if low < 0 or high >= len(class_names):
        raise SynthgenError(f"latent labels span {low}..{high}, but there are {len(class_names)} class names")


def build_unet(cfg: DiffusionConfig) -> UNet:
    """The denoiser, initialised from train.seed."""
    with seeded_cpu_rng(derive_seed(cfg.train.seed, "diffusion/init")):
        return UNet(cfg.model)


def last_logged_loss(metrics_csv: Path) -> float:
    """The `loss` of the last metrics row (a mean over the last log_every steps)."""
    with metrics_csv.open(newline="") as f:
        rows = list(csv.DictReader(f))
    return float(rows[-1]["loss"]) if rows else float("nan")


@torch.no_grad()
def evaluation_loss(trained: TrainedDiffusion, latents: LatentSet, device: torch.device) -> float:
    """The training loss of the sampling weights, without label dropout, on fixed latents, timesteps and noise.

    The draws depend only on train.seed, and t is uniform whatever `timestep_sampling` trained with, so
    two configurations are compared on identical draws.
    """
    cfg = trained.config
    g = torch.Generator().manual_seed(derive_seed(cfg.train.seed, "diffusion/eval"))
    chosen = torch.randperm(len(latents), generator=g)[:EVAL_SAMPLES]
    z = scaled_latents(latents.mean[chosen], latents.std[chosen], latents.scale_factor, g)
    labels = latents.labels[chosen] if trained.num_classes > 0 else None
    loss_fn = replace(DiffusionLoss.from_config(cfg, trained.schedule), timestep_sampling="uniform")
    total = 0.0
    for start in range(0, len(z), BATCH):
        part = slice(start, start + BATCH)
        batch_labels = labels[part].to(device) if labels is not None else None
        noise = torch.Generator(device).manual_seed(derive_seed(cfg.train.seed, "diffusion/eval_loss_noise", start))
        loss = loss_fn(trained.model, z[part].to(device), batch_labels, noise)
        total += loss.item() * len(z[part])
    return total / len(z)


def latent_statistics(z: torch.Tensor, prefix: str) -> dict[str, Any]:
    """Mean and std of scaled latents (N, C, H, W), pooled and per channel."""
    per_channel = z.transpose(0, 1).flatten(1)
    return {
        f"{prefix}_mean": z.mean().item(), f"{prefix}_std": z.std().item(),
        f"{prefix}_channel_mean": per_channel.mean(1).tolist(), f"{prefix}_channel_std": per_channel.std(1).tolist(),
    }


def data_latents(latents: LatentSet, seed: int) -> torch.Tensor:
    """A fixed, seeded subset of scaled posterior samples of the training latents."""
    g = torch.Generator().manual_seed(derive_seed(seed, "diffusion/latent_stats"))
    chosen = torch.randperm(len(latents), generator=g)[:STATS_SAMPLES]
    return scaled_latents(latents.mean[chosen], latents.std[chosen], latents.scale_factor, g)


def preview_labels(trained: TrainedDiffusion) -> torch.Tensor:
    """Labels of grid.png in row order: each class preview.images_per_class times (one row per class)."""
    rows = max(trained.num_classes, 1)
    per_row = trained.config.preview.images_per_class
    labels = torch.arange(rows).repeat_interleave(per_row)
    return labels if trained.num_classes > 0 else torch.full_like(labels, trained.null_label)


@torch.no_grad()
def generate_preview(trained: TrainedDiffusion, labels: torch.Tensor, seed: int, device: torch.device,
                     bf16: bool) -> torch.Tensor:
    """Scaled latents for `labels` with cfg.preview, batch by batch; x_T drawn on the CPU (same on every device)."""
    preview = trained.config.preview
    g_init = torch.Generator().manual_seed(derive_seed(seed, "diffusion/preview_x_T"))
    g_sampler = torch.Generator(device).manual_seed(derive_seed(seed, "diffusion/preview_sampler"))
    x_T = torch.randn((len(labels), *trained.latent_shape), generator=g_init)
    out = []
    for start in range(0, len(labels), BATCH):
        part = slice(start, start + BATCH)
        batch_labels = labels[part].to(device) if trained.num_classes > 0 else None
        with bf16_autocast(device, bf16):
            z = trained.sample_latents(batch_labels, preview, x_T[part].to(device), g_sampler)
        out.append(z.float().cpu())
    return torch.cat(out)


@torch.no_grad()
def decode_to_pixels(autoencoder: TrainedAutoencoder, z: torch.Tensor, device: torch.device, bf16: bool) -> np.ndarray:
    """uint8 images (N, H, W, C) decoded from scaled latents."""
    parts = []
    for start in range(0, len(z), BATCH):
        with bf16_autocast(device, bf16):
            parts.append(to_uint8(autoencoder.decode(z[start : start + BATCH].to(device)).float()))
    return np.concatenate(parts)


def guide_weights(checkpoint_dir: Path, step: int) -> dict[str, torch.Tensor]:
    """The autoguidance guide: the EMA weights (raw without an EMA) of the checkpoint kept at `step`."""
    path = checkpoint_dir / checkpoint_name(step)
    if not path.exists():
        raise SynthgenError(f"{path} is gone: the guide's checkpoint (diffusion.guide_fraction) was not kept, as when "
                            "a finished run is continued to more steps; train from scratch (remove the folder)")
    state = load_checkpoint(path)
    return state.ema if state.ema is not None else state.nets[MAIN]


def train_diffusion(cfg: DiffusionConfig, latents_dir: str | Path, autoencoder_dir: str | Path,
                    class_names: list[str], out_dir: str | Path) -> dict[str, Any]:
    """Train the class-conditional latent UNet on the latent store, then write the folder described in the
    module docstring. Returns a summary dict. Under torchrun every rank trains; only rank 0 evaluates and
    writes, the others return {"rank": r}."""
    out_dir = Path(out_dir)
    layout = DiffusionLayout(out_dir)
    # 1) inputs: the latent store, the autoencoder it came from, and the config resolved against them
    latents = load_latents(latents_dir)
    autoencoder = load_autoencoder(autoencoder_dir)
    check_inputs(latents, autoencoder, class_names)
    latent_shape = tuple(int(n) for n in latents.mean.shape[1:])
    resolved = resolve_config(cfg, latent_shape, len(class_names))
    # 2) train (resumes from out_dir/checkpoints when present)
    nets = {MAIN: build_unet(resolved)}
    objective = DiffusionObjective(resolved, latents.scale_factor)
    data = {"mean": latents.mean, "std": latents.std, "labels": latents.labels}
    guide_step = resolved.guide_step
    result = train(resolved.train, nets, objective, data, out_dir / "checkpoints", out_dir / "metrics.csv",
                   run_config=resolved.key_dump(), keep_steps=() if guide_step is None else (guide_step,))
    if result.rank != 0:
        return {"rank": result.rank}
    # 3) weights and config, then everything measured from the folder as written
    guide = None if guide_step is None else guide_weights(out_dir / "checkpoints", guide_step)
    digest = write_trained(out_dir, result.final_model.cpu(), result.nets[MAIN].cpu(), resolved, class_names,
                           latent_shape, autoencoder.sha256, latents.scale_factor, guide)
    with cpu_threads(resolved.train.cpu_threads):
        metrics = preview_and_measure(resolved, out_dir, latents, autoencoder)
    metrics.update(final_loss=last_logged_loss(layout.metrics_csv), steps=result.step,
                   resumed_from=result.resumed_from, train_seconds=result.seconds, images_per_s=result.images_per_s)
    atomic_write_json(layout.metrics, metrics)
    return {**metrics, "model_sha256": digest, "out_dir": str(out_dir)}


def preview_and_measure(cfg: DiffusionConfig, out_dir: Path, latents: LatentSet,
                        autoencoder: TrainedAutoencoder) -> dict[str, Any]:
    """grid.png and the metrics that need the trained model: evaluation loss and latent statistics."""
    device = resolve_device(cfg.train.device)
    trained = load_diffusion(out_dir, device)
    autoencoder.model.to(device)
    # 1) the per-class grid, sampled with the EMA weights as written
    start = time.perf_counter()
    labels = preview_labels(trained)
    z = generate_preview(trained, labels, cfg.train.seed, device, cfg.train.bf16)
    pixels = decode_to_pixels(autoencoder, z, device, cfg.train.bf16)
    save_grid(pixels, DiffusionLayout(out_dir).grid, nrow=cfg.preview.images_per_class,
              scale=max(1, GRID_MIN_PIXELS // pixels.shape[1]))
    preview_seconds = time.perf_counter() - start
    # 2) the loss on fixed draws, and the generated latents against the data's
    return {
        "eval_loss": evaluation_loss(trained, latents, device),
        "num_parameters": trained.model.num_parameters,
        **latent_statistics(z, "sample_latent"),
        **latent_statistics(data_latents(latents, cfg.train.seed), "data_latent"),
        "preview_samples": len(labels),
        "preview_seconds": preview_seconds,
    }


@dataclass(frozen=True)
class Inputs:
    prepared: PreparedLayout  # for its class names
    latents: LatentsLayout
    autoencoder: AutoencoderLayout


@writes("train_diffusion")
def run(cfg: DiffusionConfig, inputs: Inputs, out: Path) -> dict[str, Any]:
    """The stage: train on the latent store with the prepared dataset's class names, write `out`."""
    return train_diffusion(cfg, inputs.latents.root, inputs.autoencoder.root, inputs.prepared.class_names(), out)
