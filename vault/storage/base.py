"""The BlobStore protocol: opaque, server-keyed byte blobs.

Keys are minted by the store itself (random hex) and checked against one exact shape on every
call, so nothing a client sends can ever name a location in the store.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

KEY_BYTES = 16
_KEY_RE = re.compile(r"^[0-9a-f]{32}$")
READ_CHUNK = 1 << 20


class BlobStoreError(Exception):
    """Base class for blob store failures."""


class InvalidBlobKey(BlobStoreError):
    """A key does not have the shape of a key this store mints."""


class BlobNotFound(BlobStoreError):
    """No blob is stored under the key."""


class InvalidRange(BlobStoreError):
    """A range read asked for bytes outside the blob."""


@dataclass(frozen=True)
class BlobInfo:
    key: str
    size: int
    sha256: bytes


@dataclass(frozen=True)
class BlobEntry:
    """A stored blob as seen by the garbage collector."""

    key: str
    created_at: float


def mint_key() -> str:
    return secrets.token_hex(KEY_BYTES)


def check_key(key: object) -> str:
    if not isinstance(key, str) or not _KEY_RE.fullmatch(key):
        raise InvalidBlobKey("invalid blob key")
    return key


def check_range(size: int, start: int, end: int | None) -> tuple[int, int]:
    """Normalise [start, end) against a blob of `size` bytes; end=None means to the end."""
    stop = size if end is None else end
    if start < 0 or stop < start or stop > size:
        raise InvalidRange(f"range {start}-{stop} outside blob of {size} bytes")
    return start, stop


class BlobWriter(Protocol):
    """An open, not yet visible blob. Nothing is visible under a key until commit()."""

    def write(self, data: bytes) -> None: ...

    def commit(self) -> BlobInfo: ...

    def abort(self) -> None: ...


@runtime_checkable
class BlobStore(Protocol):
    def writer(self) -> BlobWriter:
        """Start a new blob; its key is minted when it is committed."""
        ...

    def put(self, chunks: Iterable[bytes]) -> BlobInfo:
        """Store a blob from a stream of chunks; returns the minted key, size and SHA-256."""
        ...

    def read(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Stream bytes [start, end) of a blob in bounded chunks."""
        ...

    def size(self, key: str) -> int: ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None:
        """Remove a blob; deleting a missing blob is not an error (GC may race a delete)."""
        ...

    def iter_blobs(self) -> Iterator[BlobEntry]:
        """Every committed blob with its creation time, for garbage collection."""
        ...

    def sweep_incomplete(self, older_than: float) -> int:
        """Remove writes that were never committed (a crash mid-upload) started before a time."""
        ...


def put_from_writer(store: BlobStore, chunks: Iterable[bytes]) -> BlobInfo:
    """Shared put(): a writer fed from an iterable, aborted on any failure."""
    writer = store.writer()
    try:
        for chunk in chunks:
            writer.write(chunk)
        return writer.commit()
    except BaseException:
        writer.abort()
        raise


class HashingCounter:
    """Running SHA-256 and length of the bytes written so far."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self.size = 0

    def update(self, data: bytes) -> None:
        self._hash.update(data)
        self.size += len(data)

    def digest(self) -> bytes:
        return self._hash.digest()
