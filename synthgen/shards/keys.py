"""Sample keys are tar member stems: they must be safe, short and free of dots and slashes."""
from __future__ import annotations

import re

MAX_KEY_LENGTH = 80  # keeps "<key>.json" inside the 100-byte ustar name field
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_SAFE = re.compile(rf"^[A-Za-z0-9_-]{{1,{MAX_KEY_LENGTH}}}$")


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
