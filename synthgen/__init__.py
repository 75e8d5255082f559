"""synthgen: turn an image dataset into large synthetic image datasets with latent diffusion."""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["open_dataset", "load_metadata", "__version__"]


def open_dataset(path, where=None, release: str | None = None, **kwargs):
    """Samples of a dataset folder, or of a release when `path` is a releases root (the newest
    published one, or `release`). See `synthgen.shards.open_dataset` for `where`, `shuffle`,
    `seed`, `batch_size`, `decode`, `rank`, `world_size`, `drop_last` and `verify`."""
    from synthgen.shards import open_dataset as open_folder

    return open_folder(_dataset_location(path, release), where=where, **kwargs)


def load_metadata(path, release: str | None = None):
    """`metadata.parquet` of a dataset folder or release, as a polars LazyFrame."""
    from synthgen.shards import load_metadata as load_folder

    return load_folder(_dataset_location(path, release))


def _dataset_location(path, release: str | None):
    """A dataset folder or URL as given, or the chosen release's folder when `path` is a releases root."""
    from synthgen.releases.consumer import resolve_dataset_path

    return resolve_dataset_path(path, release)
