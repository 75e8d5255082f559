"""synthgen: turn an image dataset into large synthetic image datasets with latent diffusion."""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["open_dataset", "load_metadata", "__version__"]


def __getattr__(name: str):
    # Lazy, so that `synthgen --help` and config validation do not pay for importing torch.
    if name in ("open_dataset", "load_metadata"):
        from synthgen import shards

        return getattr(shards, name)
    raise AttributeError(f"module 'synthgen' has no attribute {name!r}")
