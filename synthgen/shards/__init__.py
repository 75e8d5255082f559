"""The shard store: deterministic WebDataset tar shards with Parquet indexes and a manifest."""
from synthgen.shards.keys import check_key, sanitize_key
from synthgen.shards.manifest import ShardStoreError, finish_dataset, read_manifest, verify_dataset
from synthgen.shards.reader import ShardDataset, load_metadata, open_dataset, read_arrays, shard_paths
from synthgen.shards.writer import ShardSample, ShardWriter, shard_name, write_shard

__all__ = [
    "ShardSample", "ShardWriter", "ShardDataset", "ShardStoreError", "check_key", "sanitize_key",
    "finish_dataset", "load_metadata", "open_dataset", "read_arrays", "read_manifest", "shard_name",
    "shard_paths", "verify_dataset", "write_shard",
]
