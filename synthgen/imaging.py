"""Conversions between model tensors, uint8 pixels and encoded image bytes, plus grids."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from synthgen.atomic import atomic_write_bytes

FORMATS = {"png": "PNG", "webp": "WEBP", "jpg": "JPEG"}


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """Model images in [-1, 1], shape (N, C, H, W), to uint8 pixels (N, H, W, C)."""
    x = ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def from_uint8(pixels: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 pixels (N, H, W, C) or (H, W, C) to float images in [-1, 1], channels first."""
    x = torch.as_tensor(np.asarray(pixels))
    x = x.unsqueeze(0) if x.ndim == 3 else x
    return x.permute(0, 3, 1, 2).float() / 127.5 - 1


def encode_image(pixels: np.ndarray, fmt: str = "png", quality: int = 95) -> bytes:
    """Encode one (H, W, 3) uint8 image. PNG is lossless and byte-deterministic for equal pixels."""
    buf = io.BytesIO()
    options = {"compress_level": 6} if fmt == "png" else {"quality": quality}
    if fmt == "webp" and quality >= 100:
        options = {"lossless": True}
    Image.fromarray(pixels, "RGB").save(buf, FORMATS[fmt], **options)
    return buf.getvalue()


def decode_image(data: bytes) -> np.ndarray:
    """Decode encoded bytes to (H, W, 3) uint8."""
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def make_grid(pixels: np.ndarray, nrow: int, pad: int = 2, fill: int = 255) -> np.ndarray:
    """Tile (N, H, W, C) uint8 images into one image with `nrow` images per row."""
    n, h, w, c = pixels.shape
    rows = -(-n // nrow)
    grid = np.full((rows * (h + pad) + pad, nrow * (w + pad) + pad, c), fill, np.uint8)
    for i, img in enumerate(pixels):
        r, q = divmod(i, nrow)
        grid[pad + r * (h + pad): pad + r * (h + pad) + h, pad + q * (w + pad): pad + q * (w + pad) + w] = img
    return grid


def save_grid(pixels: np.ndarray, path: str | Path, nrow: int, scale: int = 1) -> None:
    """Write a PNG grid atomically; `scale` enlarges tiny images with nearest-neighbour so they can be seen."""
    grid = make_grid(pixels, nrow)
    im = Image.fromarray(grid)
    if scale > 1:
        im = im.resize((im.width * scale, im.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    im.save(buf, "PNG")
    atomic_write_bytes(path, buf.getvalue())
