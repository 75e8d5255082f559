"""Decode untrusted image bytes (or arrays) to square RGB uint8 pixels, or reject them with a reason.

Every decode either returns (resolution, resolution, 3) uint8 pixels or raises `ImageRejected`
with a short reason (one of `REASONS`) and a detail. Bytes are opened only by the plugins in
`ALLOWED_FORMATS` (never EPS, which would run Ghostscript), the pixel count is checked before any
pixel is decoded, and truncated files are errors (we never set `LOAD_TRUNCATED_IMAGES`).
"""
from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

ALLOWED_FORMATS = ("PNG", "JPEG", "GIF", "TIFF", "WEBP", "BMP", "DIB", "PPM", "TGA", "ICO", "JPEG2000", "AVIF", "QOI")  # JPEG covers MPO
REASONS = ("empty", "not_an_image", "too_many_pixels", "too_small", "truncated", "undecodable", "bad_array")
ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
SIXTEEN_BIT_MODES = ("I", "I;16", "I;16L", "I;16B", "I;16N")  # "I" is how some plugins hand over 16-bit data
BACKGROUND = (255, 255, 255)  # transparent pixels are composited onto white


class ImageRejected(Exception):
    """An input that cannot become a sample; `reason` is one of REASONS."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail = reason, detail


def open_image(data: bytes, max_image_pixels: int, min_image_size: int = 0, resolution: int | None = None) -> Image.Image:
    """Open, size-check, fully load and EXIF-rotate encoded bytes (first frame of animations).

    With `resolution`, a JPEG is decoded at the smallest DCT scale (1/2, 1/4, 1/8) that keeps
    its shorter side at least `resolution`: much faster for photos, and it is downsampled anyway.
    """
    if not data:
        raise ImageRejected("empty", "zero bytes")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            im = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
        except UnidentifiedImageError:
            raise ImageRejected("not_an_image", f"not a {'/'.join(ALLOWED_FORMATS[:6])}/... file") from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            raise ImageRejected("too_many_pixels", str(e)) from None
        except Exception as e:  # a malformed header can raise almost anything inside a plugin
            raise ImageRejected("undecodable", f"{type(e).__name__}: {e}") from None
    check_size(im.size, max_image_pixels, min_image_size)
    if resolution is not None and im.format == "JPEG":
        scale = resolution / min(im.size)
        im.draft(None, (max(1, round(im.width * scale)), max(1, round(im.height * scale))))
    return load_pixels(im)


def check_size(size: tuple[int, int], max_image_pixels: int, min_image_size: int = 0) -> None:
    """Reject decompression bombs and too-small images from the header, before any pixel is decoded."""
    width, height = size
    if width * height > max_image_pixels:
        raise ImageRejected("too_many_pixels", f"{width}x{height} is over data.max_image_pixels={max_image_pixels}")
    if width < 1 or height < 1:
        raise ImageRejected("undecodable", f"degenerate size {width}x{height}")
    if min(width, height) < min_image_size:
        raise ImageRejected("too_small", f"{width}x{height} is under data.min_image_size={min_image_size}")


def load_pixels(im: Image.Image) -> Image.Image:
    """Decode every pixel now, so truncation shows up here, then apply the EXIF orientation."""
    try:
        im.load()
    except Exception as e:  # plugins raise OSError, SyntaxError, struct.error, ... on bad data
        reason = "truncated" if "truncat" in str(e).lower() else "undecodable"
        raise ImageRejected(reason, f"{type(e).__name__}: {e}") from None
    try:
        return ImageOps.exif_transpose(im)
    except Exception:  # a broken EXIF block should not cost a readable image its place
        return im


def from_array(pixels: np.ndarray) -> Image.Image:
    """uint8 pixels (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) as a PIL image."""
    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8 or pixels.ndim not in (2, 3) or (pixels.ndim == 3 and pixels.shape[2] not in (1, 3, 4)):
        raise ImageRejected("bad_array", f"expected uint8 (H, W[, 1|3|4]), got {pixels.dtype} {pixels.shape}")
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[..., 0]
    return Image.fromarray(np.ascontiguousarray(pixels))


def sixteen_bit_to_rgb(im: Image.Image) -> Image.Image:
    """Scale 16-bit greyscale to 8 bits (65535 -> 255); Pillow's own convert would clip at 255."""
    values = np.asarray(im, dtype=np.float64)
    grey = np.clip(np.rint(values / 257.0), 0, 255).astype(np.uint8)
    return Image.fromarray(grey, "L").convert("RGB")


def float_to_rgb(im: Image.Image) -> Image.Image:
    """Float images are taken to span [0, 1]."""
    values = np.nan_to_num(np.asarray(im, dtype=np.float64), nan=0.0)
    grey = np.clip(np.rint(values * 255.0), 0, 255).astype(np.uint8)
    return Image.fromarray(grey, "L").convert("RGB")


def composite_on_background(im: Image.Image) -> Image.Image:
    """Flatten transparency onto BACKGROUND."""
    rgba = im.convert("RGBA")
    canvas = Image.new("RGBA", rgba.size, BACKGROUND + (255,))
    return Image.alpha_composite(canvas, rgba).convert("RGB")


def to_rgb(im: Image.Image) -> Image.Image:
    """Any mode (palette, greyscale, alpha, CMYK, 16-bit, float) to 8-bit RGB."""
    try:
        if im.mode in SIXTEEN_BIT_MODES:
            return sixteen_bit_to_rgb(im)
        if im.mode == "F":
            return float_to_rgb(im)
        if im.mode in ALPHA_MODES or "transparency" in im.info:
            return composite_on_background(im)
        return im.convert("RGB")
    except (ValueError, OSError) as e:  # e.g. a mode Pillow cannot convert
        raise ImageRejected("undecodable", f"cannot convert mode {im.mode} to RGB: {e}") from None


def fit_square(im: Image.Image, resolution: int) -> np.ndarray:
    """Resize the shorter side to `resolution` (Lanczos, antialiased), centre-crop the longer one."""
    if im.size != (resolution, resolution):
        im = ImageOps.fit(im, (resolution, resolution), Image.Resampling.LANCZOS, centering=(0.5, 0.5))
    return np.ascontiguousarray(np.asarray(im, dtype=np.uint8))


def decode_rgb(payload: bytes | np.ndarray, resolution: int, max_image_pixels: int,
               min_image_size: int = 0) -> np.ndarray:
    """Encoded bytes or a uint8 array to (resolution, resolution, 3) uint8, or raise ImageRejected."""
    if isinstance(payload, (bytes, bytearray, memoryview)):
        im = open_image(bytes(payload), max_image_pixels, min_image_size, resolution)
    else:
        im = from_array(payload)
        check_size(im.size, max_image_pixels, min_image_size)
    return fit_square(to_rgb(im), resolution)
