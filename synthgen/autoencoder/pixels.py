"""The image arrays the autoencoder takes: uint8 (N, H, W, C), sides divisible by its downsampling factor."""
from __future__ import annotations

import numpy as np

from synthgen.errors import SynthgenError


def check_pixels(pixels: np.ndarray, name: str, channels: int, factor: int) -> None:
    """Refuse arrays that are not (N, H, W, C) uint8 with H and W divisible by the downsampling factor."""
    if not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8 or pixels.ndim != 4 or pixels.shape[-1] != channels:
        shape = getattr(pixels, "shape", None)
        raise SynthgenError(f"{name} must be a uint8 array (N, H, W, {channels}); got {type(pixels).__name__} {shape}")
    if pixels.shape[1] % factor or pixels.shape[2] % factor:
        raise SynthgenError(f"{name}: image size {pixels.shape[1:3]} is not divisible by model.downsample={factor}")
