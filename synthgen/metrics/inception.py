"""Optional Inception-v3 features for FID/KID, from a TorchScript file the user supplies. Never downloads.

The expected file is the widely used `inception-2015-12-05.pt` (a TorchScript port of the
TensorFlow graph used by Heusel et al. 2017): it takes uint8 images (N, 3, 299, 299) and returns
2048-d pool features when called with `return_features=True`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from synthgen.errors import SynthgenError

INCEPTION_SIZE = 299


class InceptionWeightsMissing(SynthgenError):
    """The configured Inception TorchScript file is absent or unreadable."""


def load_inception(path: str | Path, device: str | torch.device = "cpu") -> torch.jit.ScriptModule:
    """Load a local TorchScript Inception feature extractor in eval mode."""
    path = Path(path)
    if not path.is_file():
        raise InceptionWeightsMissing(
            f"Inception weights not found at {path}: put the TorchScript file there or set evaluate.inception_weights: null")
    try:
        model = torch.jit.load(str(path), map_location=device)
    except (RuntimeError, ValueError) as e:
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InceptionWeightsMissing(f"{path} is not a loadable TorchScript file ({first_line})") from None
    return model.eval()


def resize_for_inception(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 3, H, W) to uint8 (N, 3, 299, 299), bilinear with antialiasing."""
    x = F.interpolate(pixels.float(), size=(INCEPTION_SIZE, INCEPTION_SIZE), mode="bilinear",
                      align_corners=False, antialias=True)
    return x.round().clamp(0, 255).to(torch.uint8)


@torch.no_grad()
def inception_features(model: torch.nn.Module, pixels: np.ndarray | torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Features (N, D) float32 on CPU of uint8 images (N, H, W, 3), as `synthgen.imaging.to_uint8` returns."""
    pixels = torch.as_tensor(np.asarray(pixels)) if not isinstance(pixels, torch.Tensor) else pixels
    assert pixels.dtype == torch.uint8 and pixels.ndim == 4 and pixels.shape[-1] == 3, (
        f"expected uint8 images (N, H, W, 3), got {pixels.dtype} {tuple(pixels.shape)}")
    device = next(iter(model.parameters()), torch.empty(0)).device
    feats = [
        model(resize_for_inception(batch.to(device).permute(0, 3, 1, 2)), return_features=True).float().cpu()
        for batch in pixels.split(batch_size)
    ]
    return torch.cat(feats)
