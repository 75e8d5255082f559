"""The two trained networks generation needs, loaded once per process and placed on one device."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

from synthgen.autoencoder.trained import TrainedAutoencoder, load_autoencoder
from synthgen.errors import SynthgenError
from synthgen.ldm.trained import TrainedDiffusion, load_diffusion


@dataclass
class GenerationModels:
    diffusion: TrainedDiffusion
    autoencoder: TrainedAutoencoder
    device: torch.device

    @property
    def image_size(self) -> int:
        return self.diffusion.latent_shape[-1] * self.autoencoder.config.downsample


def resolve_device(preference: str) -> torch.device:
    if preference == "cuda" and not torch.cuda.is_available():
        raise SynthgenError("sample.device is 'cuda' but no CUDA device is visible; use 'auto' or 'cpu'")
    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(preference)


def speed_up(model: torch.nn.Module, device: torch.device, compile: bool, channels_last: bool) -> torch.nn.Module:
    if channels_last and device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return torch.compile(model) if compile and device.type == "cuda" else model


@lru_cache(maxsize=2)
def load_models(diffusion_dir: str, autoencoder_dir: str, device: str = "auto", compile: bool = False,
                channels_last: bool = False) -> GenerationModels:
    """Load (and cache per process) the diffusion model and the autoencoder it was trained against."""
    dev = resolve_device(device)
    diffusion = load_diffusion(Path(diffusion_dir), dev)
    autoencoder = load_autoencoder(Path(autoencoder_dir), dev)
    trained_on = diffusion.autoencoder_sha256
    if trained_on != autoencoder.sha256:
        raise SynthgenError(
            f"{diffusion_dir} was trained on autoencoder {trained_on[:12]}, but {autoencoder_dir} holds "
            f"{autoencoder.sha256[:12]}; retrain the diffusion model (dvc repro train_diffusion)")
    diffusion.model = speed_up(diffusion.model, dev, compile, channels_last)
    return GenerationModels(diffusion, autoencoder, dev)
