"""A trained latent-diffusion folder: writing it, and rebuilding the denoiser and its schedule from it alone.

Files (each safetensors file has a `<stem>.manifest.json` with its sha256 beside it, written last):
  config.json           format, the resolved DiffusionConfig, class names, latent shape (C, H, W),
                        the autoencoder's sha256 and scale factor the latents came from
  schedule.safetensors  `betas` (float64, (T,)) of the forward process
  model_raw.safetensors the raw weights of the last training step
  guide.safetensors     the autoguidance guide: the EMA weights of an early step (diffusion.guide_fraction), when kept
  model.safetensors     the weights to sample with: the EMA (raw when train.ema_decay = 0); written last
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from pydantic import ValidationError
from torch import nn

from synthgen.atomic import atomic_write_json
from synthgen.config.diffusion import DiffusionConfig, SamplerConfig
from synthgen.diffusion import NoiseSchedule, eps_fn_from_model, sample_with_config
from synthgen.diffusion.guidance import CFG, Guidance
from synthgen.diffusion.noise import Generator
from synthgen.diffusion.timesteps import EpsFn
from synthgen.models.unet import UNet
from synthgen.errors import SynthgenError
from synthgen.training.checkpoint import CheckpointError, load_verified, manifest_path, save_verified
from synthgen.training.trained_folder import CONFIG, load_weights, read_json, require_files

FORMAT = "synthgen.diffusion/1"
WEIGHTS, RAW_WEIGHTS, SCHEDULE = "model.safetensors", "model_raw.safetensors", "schedule.safetensors"
GUIDE = "guide.safetensors"


@dataclass
class TrainedDiffusion:
    """The denoiser in eval mode with everything needed to sample from it (the lead's sample stage reads these)."""

    model: UNet  # eval mode, requires_grad off
    schedule: NoiseSchedule  # on the model's device
    prediction_type: str  # epsilon, v_prediction, sample or flow
    latent_shape: tuple[int, int, int]  # (C, H, W) of one scaled latent
    num_classes: int  # 0 for an unconditional model
    null_label: int  # the CFG null class (= num_classes)
    class_names: list[str]  # label i is class_names[i]
    sha256: str  # of model.safetensors, verified against its manifest
    config: DiffusionConfig  # the resolved config the model was trained with
    autoencoder_sha256: str  # weights of the autoencoder whose latents the model learned
    guide: UNet | None = None  # the autoguidance guide (an early snapshot), when the folder has one
    guide_sha256: str | None = None  # of guide.safetensors

    def eps_fn(self, labels: torch.Tensor | None = None, guidance_scale: float = 1.0,
               guidance_interval: tuple[float, float] | None = None, network: Callable | None = None,
               guidance: Guidance = CFG, guide_network: Callable | None = None) -> EpsFn:
        """The samplers' eps_fn(x_t, t) for fixed labels (B,), guided with `guidance_scale` by the method of
        `guidance` (plain CFG, Ho & Salimans 2022, by default) where sigma_t lies in `guidance_interval`
        (everywhere when None), after autoguidance by the folder's guide when `guidance.autoguidance_scale` != 1.
        `network` and `guide_network` stand in for the model and the guide, e.g. the sample stage's fixed-chunk
        wrappers of them. Build one per sampler run (APG momentum holds state)."""
        if labels is None and self.num_classes > 0:
            raise ValueError("this model is class-conditional: pass labels (null_label for unconditional samples)")
        if labels is not None and guidance.autoguidance_scale != 1.0 and self.guide is None:
            raise SynthgenError(f"autoguidance_scale = {guidance.autoguidance_scale} needs the guide snapshot {GUIDE} "
                                "in the diffusion folder: retrain with diffusion.guide_fraction set, or sample with "
                                "autoguidance_scale 1")
        return eps_fn_from_model(network or self.model, self.schedule, self.prediction_type, labels=labels,
                                 guidance_scale=guidance_scale if labels is not None else 1.0,
                                 null_label=self.null_label, guidance_interval=guidance_interval, guidance=guidance,
                                 guide=guide_network or self.guide,
                                 self_conditioning=self.config.model.self_conditioning)

    @torch.no_grad()
    def sample_latents(self, labels: torch.Tensor | None, sampler: SamplerConfig, x_T: torch.Tensor,
                       generator: Generator | None = None) -> torch.Tensor:
        """Scaled latents z0 from x_T with the sampler, steps and guidance of `sampler`."""
        eps_fn = self.eps_fn(labels, sampler.guidance_scale, sampler.guidance_interval, guidance=sampler.guidance)
        return sample_with_config(eps_fn, x_T, self.schedule, sampler, generator)


def write_trained(out_dir: str | Path, model: nn.Module, raw_model: nn.Module, cfg: DiffusionConfig,
                  class_names: list[str], latent_shape: tuple[int, int, int], autoencoder_sha256: str,
                  scale_factor: float, guide: dict[str, torch.Tensor] | None = None) -> str:
    """Write config.json, the schedule, the raw weights and the guide's (a state dict, when given), then the
    sampling weights; return the latter's sha256."""
    out_dir = Path(out_dir)
    atomic_write_json(out_dir / CONFIG, {
        "format": FORMAT,
        "diffusion": cfg.model_dump(mode="json"),
        "class_names": list(class_names),
        "latent_shape": list(latent_shape),
        "null_label": cfg.model.num_classes,
        "autoencoder_sha256": autoencoder_sha256,
        "scale_factor": scale_factor,
    })
    save_verified(out_dir / SCHEDULE, {"betas": NoiseSchedule.from_config(cfg.schedule).betas})
    save_verified(out_dir / RAW_WEIGHTS, raw_model.state_dict(), {"format": FORMAT, "weights": "raw"})
    if guide is not None:
        save_verified(out_dir / GUIDE, guide, {"format": FORMAT, "weights": "guide"})
    else:  # a guide left from an earlier run of the folder is not this model's
        manifest_path(out_dir / GUIDE).unlink(missing_ok=True)
        (out_dir / GUIDE).unlink(missing_ok=True)
    kind = "raw" if cfg.train.ema_decay == 0 else "ema"
    return save_verified(out_dir / WEIGHTS, model.state_dict(), {"format": FORMAT, "weights": kind})


def read_config(model_dir: Path) -> dict[str, Any]:
    require_files(model_dir, (CONFIG,), "train the diffusion model first")
    path = model_dir / CONFIG
    config = read_json(path)
    if config.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a {FORMAT} folder (format={config.get('format')!r})")
    return config


def read_schedule(model_dir: Path, cfg: DiffusionConfig) -> NoiseSchedule:
    """The stored betas, which must be the ones config.json's schedule section describes."""
    tensors, _, _ = load_verified(model_dir / SCHEDULE)
    schedule = NoiseSchedule(tensors["betas"])
    if not torch.equal(schedule.betas, NoiseSchedule.from_config(cfg.schedule).betas):
        raise CheckpointError(f"{model_dir / SCHEDULE} does not match the schedule in {CONFIG}; retrain or restore the folder")
    return schedule


def load_diffusion(model_dir: str | Path, device: str | torch.device = "cpu", weights: str = WEIGHTS) -> TrainedDiffusion:
    """Rebuild the denoiser from its folder, refusing files whose sha256 differs from their manifest.

    `weights` picks the file: model.safetensors (EMA, the default) or model_raw.safetensors.
    """
    model_dir = Path(model_dir)
    config = read_config(model_dir)
    try:
        cfg = DiffusionConfig.model_validate(config["diffusion"])
    except ValidationError as e:
        raise CheckpointError(f"{model_dir / CONFIG}: the diffusion section is invalid ({e.errors()[0]['msg']})") from None
    class_names, latent_shape = list(config["class_names"]), tuple(config["latent_shape"])
    if cfg.model.num_classes not in (0, len(class_names)):
        raise CheckpointError(f"{model_dir / CONFIG}: {cfg.model.num_classes} model classes but {len(class_names)} class names")
    model, digest = load_weights(UNet(cfg.model), model_dir / weights, device)
    guide, guide_digest = None, None
    if (model_dir / GUIDE).exists():
        guide, guide_digest = load_weights(UNet(cfg.model), model_dir / GUIDE, device)
    return TrainedDiffusion(
        model=model,
        schedule=read_schedule(model_dir, cfg).to(device),
        prediction_type=cfg.prediction_type,
        latent_shape=(int(latent_shape[0]), int(latent_shape[1]), int(latent_shape[2])),
        num_classes=cfg.model.num_classes,
        null_label=model.null_label,
        class_names=class_names,
        sha256=digest,
        config=cfg,
        autoencoder_sha256=str(config["autoencoder_sha256"]),
        guide=guide,
        guide_sha256=guide_digest,
    )
