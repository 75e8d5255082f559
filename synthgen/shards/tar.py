"""Byte-deterministic tar output: fixed mtime, owner and mode, members in the order given."""
from __future__ import annotations

import hashlib
import io
import tarfile
from typing import BinaryIO

FIXED_MTIME = 946684800  # 2000-01-01T00:00:00Z; any constant works, a real clock would not


class HashingWriter:
    """A write-only file wrapper that counts and hashes what passes through it."""

    def __init__(self, raw: BinaryIO):
        self.raw, self.bytes, self._sha = raw, 0, hashlib.sha256()

    def write(self, data: bytes) -> int:
        self._sha.update(data)
        self.bytes += len(data)
        return self.raw.write(data)

    def tell(self) -> int:
        return self.bytes

    def hexdigest(self) -> str:
        return self._sha.hexdigest()


def add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), FIXED_MTIME, 0o444
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))


def open_tar(sink: HashingWriter) -> tarfile.TarFile:
    return tarfile.open(fileobj=sink, mode="w", format=tarfile.USTAR_FORMAT)
