"""A trained autoencoder folder: writing it, and rebuilding model + scale factor from it alone.

Files: model.safetensors (+ model.manifest.json with its sha256), config.json (the full
AutoencoderConfig; its `model` section rebuilds the network) and scale_factor (one float as text).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from synthgen.atomic import atomic_write_bytes, atomic_write_json
from synthgen.config.autoencoder import AutoencoderConfig, AutoencoderModelConfig
from synthgen.models.autoencoder import Autoencoder, DiagonalGaussian
from synthgen.training.checkpoint import save_verified
from synthgen.training.trained_folder import CONFIG, load_weights, read_json, require_files

WEIGHTS, SCALE = "model.safetensors", "scale_factor"


@dataclass
class TrainedAutoencoder:
    """The network in eval mode, the latent scale factor, and the sha256 of the weights it came from."""

    model: Autoencoder
    scale_factor: float
    config: AutoencoderModelConfig
    sha256: str

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> DiagonalGaussian:
        """Posterior q(z|x) of images (N, C, H, W) in [-1, 1]; z is unscaled."""
        return self.model.encode(images)

    @torch.no_grad()
    def decode(self, z_scaled: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] (unclamped) from scaled latents: x = D(z_scaled / scale_factor) (diffusion-math.md Sec. 4)."""
        return self.model.decode(z_scaled / self.scale_factor)


def write_trained(out_dir: str | Path, model: Autoencoder, cfg: AutoencoderConfig, scale_factor: float) -> str:
    """Write config.json, scale_factor and the weights (manifest last); return the weights' sha256."""
    out_dir = Path(out_dir)
    atomic_write_json(out_dir / CONFIG, cfg.model_dump(mode="json"))
    atomic_write_bytes(out_dir / SCALE, f"{scale_factor!r}\n".encode())
    return save_verified(out_dir / WEIGHTS, model.state_dict())


def load_autoencoder(model_dir: str | Path, device: str | torch.device = "cpu") -> TrainedAutoencoder:
    """Rebuild the autoencoder from its folder, refusing weights whose sha256 differs from the manifest."""
    model_dir = Path(model_dir)
    require_files(model_dir, (CONFIG, SCALE), "train the autoencoder first")
    model_cfg = AutoencoderModelConfig.model_validate(read_json(model_dir / CONFIG)["model"])
    model, digest = load_weights(Autoencoder(model_cfg), model_dir / WEIGHTS, device)
    scale = float((model_dir / SCALE).read_text().strip())
    return TrainedAutoencoder(model, scale, model_cfg, digest)
