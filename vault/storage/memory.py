"""An in-memory BlobStore for unit tests, with an injectable clock."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator

from vault.storage.base import (
    READ_CHUNK,
    BlobEntry,
    BlobInfo,
    BlobNotFound,
    BlobStoreError,
    HashingCounter,
    check_key,
    check_range,
    mint_key,
    put_from_writer,
)


class _MemoryWriter:
    def __init__(self, store: MemoryBlobStore) -> None:
        self._store = store
        self._parts: list[bytes] = []
        self._counter = HashingCounter()
        self._done = False
        self._token = store._open_write(self)

    def write(self, data: bytes) -> None:
        if self._done:
            raise ValueError("writer is closed")
        self._parts.append(bytes(data))
        self._counter.update(data)

    def commit(self) -> BlobInfo:
        if self._done:
            raise ValueError("writer is closed")
        self._done = True
        key = mint_key()
        self._store._commit(self._token, key, b"".join(self._parts))
        return BlobInfo(key=key, size=self._counter.size, sha256=self._counter.digest())

    def abort(self) -> None:
        if not self._done:
            self._done = True
            self._store._drop_write(self._token)


class MemoryBlobStore:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._blobs: dict[str, tuple[bytes, float]] = {}
        self._pending: dict[int, float] = {}
        self._next_token = 0

    def _open_write(self, writer: _MemoryWriter) -> int:
        with self._lock:
            self._next_token += 1
            self._pending[self._next_token] = self._clock()
            return self._next_token

    def _drop_write(self, token: int) -> None:
        with self._lock:
            self._pending.pop(token, None)

    def _commit(self, token: int, key: str, data: bytes) -> None:
        with self._lock:
            if self._pending.pop(token, None) is None:
                # The collector swept this write as abandoned; like a deleted temp file.
                raise BlobStoreError("write was abandoned")
            self._blobs[key] = (data, self._clock())

    def _get(self, key: str) -> bytes:
        check_key(key)
        with self._lock:
            try:
                return self._blobs[key][0]
            except KeyError:
                raise BlobNotFound(key) from None

    @property
    def pending_writes(self) -> int:
        return len(self._pending)

    def writer(self) -> _MemoryWriter:
        return _MemoryWriter(self)

    def put(self, chunks: Iterable[bytes]) -> BlobInfo:
        return put_from_writer(self, chunks)

    def read(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        data = self._get(key)
        start, stop = check_range(len(data), start, end)

        def _chunks() -> Iterator[bytes]:
            for offset in range(start, stop, READ_CHUNK):
                yield data[offset : min(offset + READ_CHUNK, stop)]

        return _chunks()

    def size(self, key: str) -> int:
        return len(self._get(key))

    def exists(self, key: str) -> bool:
        check_key(key)
        with self._lock:
            return key in self._blobs

    def delete(self, key: str) -> None:
        check_key(key)
        with self._lock:
            self._blobs.pop(key, None)

    def iter_blobs(self) -> Iterator[BlobEntry]:
        with self._lock:
            entries = [BlobEntry(key=k, created_at=t) for k, (_, t) in self._blobs.items()]
        return iter(entries)

    def sweep_incomplete(self, older_than: float) -> int:
        with self._lock:
            stale = [tok for tok, started in self._pending.items() if started < older_than]
            for tok in stale:
                del self._pending[tok]
        return len(stale)
