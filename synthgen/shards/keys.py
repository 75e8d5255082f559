"""Shard names and sample keys: the one place that builds and parses them.

A shard is `<prefix>-NNNNNN.tar`; a generated sample's key is `<prefix>-NNNNNNNNN` (its global
index). Keys are tar member stems: they must be safe, short and free of dots and slashes.
"""
from __future__ import annotations

import re

MAX_KEY_LENGTH = 80  # keeps "<key>.json" inside the 100-byte ustar name field
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_SAFE = re.compile(rf"^[A-Za-z0-9_-]{{1,{MAX_KEY_LENGTH}}}$")
SHARD_DIGITS, KEY_DIGITS = 6, 9


def shard_name(prefix: str, index: int) -> str:
    return f"{prefix}-{index:0{SHARD_DIGITS}d}.tar"


def shard_pattern(prefix: str) -> str:
    """How shard names read in prose: `<prefix>-NNNNNN`."""
    return f"{prefix}-{'N' * SHARD_DIGITS}"


def shard_glob(prefix: str) -> str:
    return f"{prefix}-*.tar"


def sample_key(prefix: str, index: int) -> str:
    return f"{prefix}-{index:0{KEY_DIGITS}d}"


def parse_sample_key(prefix: str, key: str) -> int:
    """The global index in a key made by `sample_key(prefix, index)`; ValueError for any other key."""
    match = re.fullmatch(rf"{re.escape(prefix)}-(\d+)", key)
    if match is None:
        raise ValueError(f"sample key {key!r} is not {prefix}-<index>")
    return int(match.group(1))


def sanitize_key(raw: str) -> str:
    """Map any string (a file path, say) to a safe key: runs of other characters become '_'."""
    key = _UNSAFE.sub("_", raw).strip("_")
    if not key:
        raise ValueError(f"cannot derive a sample key from {raw!r}")
    if len(key) > MAX_KEY_LENGTH:
        import hashlib

        digest = hashlib.sha256(raw.encode()).hexdigest()[:16]
        key = f"{key[: MAX_KEY_LENGTH - 17]}_{digest}"
    return key


def check_key(key: str) -> str:
    """Refuse a key that would be an unsafe tar member name (path traversal, dots, odd bytes)."""
    if not _SAFE.match(key):
        raise ValueError(
            f"unsafe sample key {key!r}: keys are 1-{MAX_KEY_LENGTH} characters of A-Z a-z 0-9 _ -"
        )
    return key
