"""One storage layer for dataset folders: a local path or an fsspec URL (`s3://bucket/prefix`, `memory://…`).

`open_store(location)` gives a `Store`: objects are named relative to its root. Reads go through
fsspec everywhere. Writes are atomic: on a local disk a temporary sibling is renamed over the
target (`synthgen.atomic`); on an object store a single put is already atomic, so a file is
written to a local temporary first and then uploaded. Credentials and endpoints come from the
usual places (for S3: `AWS_*` environment variables, `~/.aws`, `AWS_ENDPOINT_URL`).
"""
from __future__ import annotations

import hashlib
import os
import posixpath
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

import fsspec

from synthgen.atomic import atomic_open, atomic_write_bytes
from synthgen.errors import SynthgenError

OBJECT_STORES = ("s3", "s3a", "gs", "gcs", "az", "abfs", "abfss")  # the first part of the path is a bucket
CHUNK = 1 << 20


class StorageError(SynthgenError):
    """A storage URL cannot be used: unknown scheme, missing fsspec package, unreachable endpoint, no bucket."""


def is_url(location: str | os.PathLike) -> bool:
    """True for `scheme://…` locations (fsspec URLs), False for local paths."""
    return "://" in str(location)


def join(location: str | os.PathLike, name: str) -> str:
    """`location/name` for a local path or a URL."""
    if is_url(location):
        return posixpath.join(os.fspath(location).rstrip("/"), name)
    return str(Path(location) / name)


def _filesystem(protocol: str, url: str) -> fsspec.AbstractFileSystem:
    try:
        return fsspec.filesystem(protocol)
    except ImportError as e:
        raise StorageError(f"{url}: the {protocol}:// scheme needs an fsspec package that is not installed ({e})") \
            from None
    except ValueError:
        raise StorageError(f"{url}: unknown storage scheme {protocol}://") from None


_checked_buckets: set[tuple[str, str]] = set()


def _check_bucket(fs: fsspec.AbstractFileSystem, protocol: str, bucket: str, url: str) -> None:
    """One clear line when the bucket is missing, forbidden or its endpoint cannot be reached (checked once)."""
    if protocol not in OBJECT_STORES or (protocol, bucket) in _checked_buckets:
        return
    try:
        fs.info(bucket)
    except FileNotFoundError:
        raise StorageError(f"{url}: bucket {bucket!r} does not exist") from None
    except PermissionError:
        raise StorageError(f"{url}: access to bucket {bucket!r} denied; check your credentials") from None
    except Exception as e:  # the filesystem's own errors: no endpoint, no credentials (botocore, aiohttp, …)
        raise StorageError(f"{url}: cannot access bucket {bucket!r}: {str(e).splitlines()[0]}") from None
    _checked_buckets.add((protocol, bucket))


@dataclass(frozen=True)
class Store:
    """A folder on some filesystem: `fs` is the fsspec filesystem, `root` the folder's path in it."""

    fs: fsspec.AbstractFileSystem
    root: str
    location: str  # as the user gave it, for messages and URLs

    @property
    def is_local(self) -> bool:
        return not is_url(self.location)

    def path(self, name: str) -> str:
        """`name`'s path inside `fs`."""
        return posixpath.join(self.root, name) if name else self.root

    def url(self, name: str) -> str:
        """`name` as a local path or a full URL."""
        return join(self.location, name)

    def child(self, name: str) -> "Store":
        return Store(self.fs, self.path(name), self.url(name))

    def exists(self, name: str) -> bool:
        return self.fs.isfile(self.path(name))

    def size(self, name: str) -> int:
        return self.fs.size(self.path(name))

    def stat(self, name: str) -> tuple[int, str] | None:
        """(size, a version that changes when the object is rewritten: mtime or ETag), or None if it is missing."""
        try:
            info = self.fs.info(self.path(name))
        except FileNotFoundError:
            return None
        version = next((info[k] for k in ("mtime", "ETag", "LastModified", "created") if info.get(k)), "")
        return info["size"], str(version)

    def read_bytes(self, name: str) -> bytes:
        return self.fs.cat_file(self.path(name))

    def open(self, name: str) -> BinaryIO:
        """A binary stream for reading `name`."""
        return self.fs.open(self.path(name), "rb")

    def list(self, suffix: str = "") -> list[str]:
        """Names of the objects directly in this folder ending with `suffix`, sorted."""
        try:
            entries = self.fs.ls(self.root, detail=True, refresh=True)
        except FileNotFoundError:
            return []
        names = (posixpath.basename(e["name"].rstrip("/")) for e in entries if e["type"] == "file")
        return sorted(n for n in names if n.endswith(suffix))

    def remove(self, name: str) -> None:
        """Delete `name` if it exists."""
        if self.exists(name):
            self.fs.rm_file(self.path(name))

    def sha256(self, name: str) -> str:
        """sha256 of an object, read in chunks."""
        h = hashlib.sha256()
        with self.open(name) as f:
            while block := f.read(CHUNK):
                h.update(block)
        return h.hexdigest()

    def makedirs(self) -> None:
        """Create the folder on a local disk; object stores have no folders to make."""
        if self.is_local:
            Path(self.root).mkdir(parents=True, exist_ok=True)

    def put_atomic(self, name: str, data: bytes | Path) -> None:
        """Publish `name` whole: bytes, or the contents of a local file."""
        if isinstance(data, Path):
            if self.is_local:
                with open(data, "rb") as src, atomic_open(self.path(name)) as f:
                    while block := src.read(CHUNK):
                        f.write(block)
            else:
                self.fs.put_file(str(data), self.path(name))
        elif self.is_local:
            atomic_write_bytes(self.path(name), data)
        else:
            self.fs.pipe_file(self.path(name), data)

    @contextmanager
    def writer(self, name: str) -> Iterator[BinaryIO]:
        """A file to write `name` through; it is published only when the block exits cleanly."""
        if self.is_local:
            with atomic_open(self.path(name)) as f:
                yield f
            return
        with tempfile.TemporaryDirectory(prefix="synthgen-upload-") as tmp:
            local = Path(tmp) / "object"
            with open(local, "wb") as f:
                yield f
            self.put_atomic(name, local)


def open_store(location: str | os.PathLike) -> Store:
    """The `Store` for a local folder or an fsspec URL; a bad URL or bucket is a one-line `StorageError`."""
    location = os.fspath(location)
    if not is_url(location):
        return Store(fsspec.filesystem("file"), str(Path(location).absolute()), location)
    protocol = location.split("://", 1)[0]
    fs = _filesystem(protocol, location)
    root = fs._strip_protocol(location).rstrip("/")
    _check_bucket(fs, protocol, root.split("/", 1)[0], location)
    fs.invalidate_cache(root)  # another process may have written here since this one last listed it
    return Store(fs, root, location)


def split_location(path: str | os.PathLike) -> tuple[Store, str]:
    """(the store of `path`'s folder, its name): `s3://b/p/x.tar` -> (store of `s3://b/p`, `x.tar`)."""
    path = os.fspath(path)
    if is_url(path):
        folder, name = path.rstrip("/").rsplit("/", 1)
        return open_store(folder), name
    return open_store(Path(path).parent), Path(path).name
