"""`shards.json`: the shard list in the format `wids.ShardListDataset` reads, for random access.

Urls are relative to the file's folder, so the dataset can be moved or copied as it is.
"""
from __future__ import annotations

from typing import Any

from synthgen.atomic import canonical_json

WIDS_KIND = "wids-shard-index-v1"


def shardlist(shards: list[dict[str, Any]]) -> dict[str, Any]:
    """The wids description of manifest shard entries, in their order."""
    return {
        "__kind__": WIDS_KIND,
        "wids_version": 1,
        "shardlist": [{"url": s["name"], "nsamples": s["count"], "filesize": s["bytes"], "sha256": s["sha256"]}
                      for s in shards],
    }


def shardlist_bytes(shards: list[dict[str, Any]]) -> bytes:
    return canonical_json(shardlist(shards)).encode()
