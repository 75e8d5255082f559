"""scikit-learn's bundled 8x8 handwritten digits (1797 images, ships inside the package)."""
from __future__ import annotations

import numpy as np

from synthgen.config.base import Section
from synthgen.data.sources import DataSourceError, Source, SourceSpec, array_items

DIGITS_MAX = 16.0  # load_digits stores ink as integers 0..16


def load_digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """(N, 8, 8) uint8 pixels, white ink on black as in MNIST, and int64 labels 0-9."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise DataSourceError("data.source 'digits' needs scikit-learn: pip install scikit-learn") from None
    digits = load_digits()
    pixels = np.rint(digits.images * (255.0 / DIGITS_MAX)).clip(0, 255).astype(np.uint8)
    return pixels, digits.target.astype(np.int64)


def digits_source(options: Section, resolution: int) -> Source:
    """All 1797 digits; `decode` upsamples them to `data.resolution`."""
    pixels, labels = load_digits_arrays()
    names = [str(d) for d in range(10)]
    return Source("digits", names, lambda: array_items("digits", pixels, labels, "sklearn.load_digits"))


SOURCE = SourceSpec("digits", Section, digits_source)  # no options
