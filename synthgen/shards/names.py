"""The files of a shard dataset folder: the one place that names them.

At the top level lies only what a consumer loads: the shards (named by `synthgen.shards.keys`),
`metadata.parquet`, the `shards.json` wids index, a dataset card `README.md` where a stage writes
one, and `manifest.json`, written last. Bookkeeping lives in folders whose names begin with `__`,
which folder scanners (Hugging Face `datasets`, for one) skip. Standard library only.
"""
from __future__ import annotations

FORMAT = "synthgen.shards/v2"  # v2: per-shard indexes and receipts moved into `__` folders; uniform schema
OLD_FORMATS = ("synthgen.shards/v1",)  # layouts this version refuses, with a hint to remake the dataset

MANIFEST = "manifest.json"
METADATA = "metadata.parquet"  # every sample's row, merged from the per-shard indexes
WIDS_INDEX = "shards.json"  # `wids.ShardListDataset` reads it: random access by sample position

INDEX_DIR = "__index__"  # each shard's own Parquet index
PROGRESS = "__progress__"  # a receipt per finished shard, so a rerun makes only what is missing
REFILL = "__refill__"  # a refill round's journal and staging shard while it runs


def shard_index_name(shard: str) -> str:
    """The Parquet index of shard `shard` (a file name), relative to the shard's folder."""
    return f"{INDEX_DIR}/{shard.removesuffix('.tar')}.parquet"
