"""decode_rgb: every image mode becomes RGB uint8 at the target size; every bad input gets its reason."""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from synthgen.data.decode import ImageRejected, decode_rgb

RES = 16
BIG = 1_000_000


def encode(im: Image.Image, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **options)
    return buf.getvalue()


def rgb(width: int = 24, height: int = 20, seed: int = 0) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels, "RGB")


def decode(data, **kw) -> np.ndarray:
    return decode_rgb(data, RES, kw.pop("max_image_pixels", BIG), **kw)


def rejection(data, **kw) -> ImageRejected:
    with pytest.raises(ImageRejected) as info:
        decode(data, **kw)
    return info.value


def png_header_only(width: int, height: int) -> bytes:
    """A PNG claiming `width` x `height` whose pixel data (IDAT) stops after a few bytes."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk + struct.pack(">I", 1000) + b"IDAT" + zlib.compress(b"\0" * 64)[:8]


def palette_png_with_transparency() -> bytes:
    im = Image.new("P", (20, 20), 0)
    im.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    im.paste(1, (0, 0, 10, 20))
    return encode(im, "PNG", transparency=0)


ENCODED = {
    "png": lambda: encode(rgb(), "PNG"),
    "jpeg": lambda: encode(rgb(), "JPEG", quality=90),
    "gif": lambda: encode(rgb().convert("P"), "GIF"),
    "tiff": lambda: encode(rgb(), "TIFF"),
    "webp": lambda: encode(rgb(), "WEBP"),
    "bmp": lambda: encode(rgb(), "BMP"),
    "palette_png": lambda: encode(rgb().convert("P", palette=Image.Palette.ADAPTIVE, colors=8), "PNG"),
    "palette_transparent": palette_png_with_transparency,
    "greyscale": lambda: encode(rgb().convert("L"), "PNG"),
    "greyscale_alpha": lambda: encode(rgb().convert("LA"), "PNG"),
    "bilevel": lambda: encode(rgb().convert("1"), "PNG"),
    "sixteen_bit": lambda: encode(Image.fromarray(np.full((20, 24), 40000, np.uint16)), "PNG"),
    "sixteen_bit_tiff": lambda: encode(Image.fromarray(np.full((20, 24), 40000, np.uint16)), "TIFF"),
    "cmyk_jpeg": lambda: encode(rgb().convert("CMYK"), "JPEG"),
    "cmyk_tiff": lambda: encode(rgb().convert("CMYK"), "TIFF"),
    "rgba": lambda: encode(rgb().convert("RGBA"), "PNG"),
    "float_tiff": lambda: encode(Image.fromarray(np.full((20, 24), 0.5, np.float32)), "TIFF"),
}


@pytest.mark.parametrize("kind", sorted(ENCODED))
def test_every_mode_decodes_to_square_rgb_uint8(kind):
    pixels = decode(ENCODED[kind]())
    assert pixels.shape == (RES, RES, 3) and pixels.dtype == np.uint8 and pixels.flags.c_contiguous


@pytest.mark.parametrize("kind", ["sixteen_bit", "sixteen_bit_tiff"])
def test_sixteen_bit_is_scaled_not_clipped(kind):
    assert np.all(decode(ENCODED[kind]()) == round(40000 / 257))  # Pillow's convert would give 255


def test_float_image_spans_zero_to_one():
    assert np.all(decode(ENCODED["float_tiff"]()) == 128)


def test_transparent_pixels_become_white():
    im = Image.new("RGBA", (16, 16), (255, 0, 0, 0))
    im.paste((0, 0, 255, 255), (0, 0, 8, 16))
    pixels = decode(encode(im, "PNG"))
    assert tuple(pixels[8, 2]) == (0, 0, 255) and tuple(pixels[8, 13]) == (255, 255, 255)


def test_palette_transparency_becomes_white():
    pixels = decode(palette_png_with_transparency())
    assert tuple(pixels[8, 2]) == (0, 0, 255) and tuple(pixels[8, 13]) == (255, 255, 255)


def test_cmyk_is_converted():
    im = Image.new("CMYK", (16, 16), (255, 0, 0, 0))  # pure cyan ink
    assert tuple(decode(encode(im, "TIFF"))[8, 8]) == (0, 255, 255)


def test_exif_orientation_is_applied():
    im = Image.new("RGB", (32, 16), (255, 0, 0))
    im.paste((0, 0, 255), (16, 0, 32, 16))  # stored: red left half, blue right half
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display": left half ends up on top
    pixels = decode(encode(im, "JPEG", quality=95, exif=exif.tobytes())).astype(int)
    top, bottom = pixels[2, 8], pixels[13, 8]
    assert top[0] > 200 and top[2] < 60, top
    assert bottom[2] > 200 and bottom[0] < 60, bottom


def test_shorter_side_is_resized_and_longer_centre_cropped():
    im = Image.new("RGB", (60, 20), (255, 0, 0))
    im.paste((0, 255, 0), (20, 0, 40, 20))  # red | green | blue thirds
    im.paste((0, 0, 255), (40, 0, 60, 20))
    pixels = decode(encode(im, "PNG"))
    assert np.all(pixels[:, 2:-2] == (0, 255, 0))


def test_arrays_at_the_target_size_pass_through_unchanged():
    pixels = np.random.default_rng(1).integers(0, 256, (RES, RES, 3), dtype=np.uint8)
    assert np.array_equal(decode(pixels), pixels)
    assert decode(pixels[..., 0]).shape == (RES, RES, 3)  # greyscale array
    assert decode(np.zeros((8, 8, 4), np.uint8)).shape == (RES, RES, 3)  # RGBA array, upsampled


def test_zero_bytes_rejected():
    assert rejection(b"").reason == "empty"


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "TIFF"])
def test_truncated_files_rejected(fmt):
    data = encode(rgb(64, 64), fmt)
    assert rejection(data[: len(data) // 2]).reason == "truncated"


def test_text_file_rejected():
    assert rejection(b"just some text, not an image\n" * 4).reason == "not_an_image"


def test_eps_is_never_handed_to_ghostscript():
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"
    assert rejection(eps).reason == "not_an_image"


def test_decompression_bomb_rejected_by_configured_limit():
    error = rejection(encode(rgb(64, 64), "PNG"), max_image_pixels=1000)
    assert error.reason == "too_many_pixels" and "64x64" in error.detail


def test_pillow_bomb_error_becomes_rejection():
    assert rejection(png_header_only(100_000, 100_000)).reason == "too_many_pixels"


def test_header_without_pixels_is_rejected_not_raised():
    assert rejection(png_header_only(20, 20)).reason in ("truncated", "undecodable")


def test_image_below_minimum_size_rejected():
    assert rejection(encode(rgb(12, 40), "PNG"), min_image_size=16).reason == "too_small"
    assert decode(encode(rgb(16, 40), "PNG"), min_image_size=16).shape == (RES, RES, 3)


def test_bad_arrays_rejected():
    assert rejection(np.zeros((8, 8, 3), np.float32)).reason == "bad_array"
    assert rejection(np.zeros((8, 8, 2), np.uint8)).reason == "bad_array"


def test_large_jpeg_is_drafted_but_still_checked_at_full_size():
    photo = encode(rgb(256, 192), "JPEG", quality=95)
    assert decode(photo, min_image_size=150).shape == (RES, RES, 3)  # drafted to 1/8 internally
    assert rejection(photo, min_image_size=200).reason == "too_small"
