"""A BlobStore on the local filesystem.

Layout: <root>/<key[:2]>/<key>. A write goes to a temporary file in the directory it will live
in, is fsynced, renamed into place and the directory fsynced (once per blob), so a crash leaves
either the whole blob or no blob, never a partial one under a real key. Paths are built only
from keys this store minted and validated; nothing from a client reaches the filesystem.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Iterable, Iterator
from pathlib import Path

from vault.errors import InsufficientStorage
from vault.storage.base import (
    READ_CHUNK,
    BlobEntry,
    BlobInfo,
    BlobNotFound,
    HashingCounter,
    InvalidBlobKey,
    check_key,
    check_range,
    mint_key,
    put_from_writer,
)

_TEMP_PREFIX = ".tmp-"
_FANOUT = 2
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


class StorageFull(InsufficientStorage):
    code = "storage_full"
    title = "The server's storage is full"


def _raise_if_full(exc: OSError) -> None:
    # A full disk is the operator's condition, not a crash: a clear 507 instead of a 500.
    if exc.errno in _DISK_FULL:
        raise StorageFull("the server has no space left for this data; try again later") from exc


_sync_data = getattr(os, "fdatasync", os.fsync)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _FileWriter:
    def __init__(self, store: FilesystemBlobStore) -> None:
        self._store = store
        self._key = mint_key()
        self._dir = store._dir_for(self._key)
        self._dir.mkdir(parents=True, exist_ok=True)
        self._temp = self._dir / f"{_TEMP_PREFIX}{secrets.token_hex(8)}"
        # O_EXCL: never write through a file that someone else put at this name.
        fd = os.open(self._temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._file = os.fdopen(fd, "wb")
        self._counter = HashingCounter()
        self._done = False

    def write(self, data: bytes) -> None:
        if self._done:
            raise ValueError("writer is closed")
        try:
            self._file.write(data)
        except OSError as exc:
            _raise_if_full(exc)
            raise
        self._counter.update(data)

    def commit(self) -> BlobInfo:
        if self._done:
            raise ValueError("writer is closed")
        self._done = True
        try:
            self._file.flush()
            # Data and size on disk before the rename makes the blob visible (fdatasync skips
            # the timestamps, which nothing relies on).
            _sync_data(self._file.fileno())
            self._file.close()
            os.replace(self._temp, self._store._path(self._key))
            _fsync_dir(self._dir)
        except OSError as exc:
            self._discard()
            _raise_if_full(exc)
            raise
        except BaseException:
            self._discard()
            raise
        return BlobInfo(key=self._key, size=self._counter.size, sha256=self._counter.digest())

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        self._discard()

    def _discard(self) -> None:
        # close() flushes buffered bytes and fails again on a full disk; remove the file anyway.
        with contextlib.suppress(OSError):
            self._file.close()
        self._temp.unlink(missing_ok=True)


class FilesystemBlobStore:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self._root = Path(root).resolve()
        self._root.mkdir(parents=True, exist_ok=True)

    @property
    def root(self) -> Path:
        return self._root

    def _dir_for(self, key: str) -> Path:
        return self._root / key[:_FANOUT]

    def _path(self, key: str) -> Path:
        check_key(key)
        return self._dir_for(key) / key

    def writer(self) -> _FileWriter:
        return _FileWriter(self)

    def put(self, chunks: Iterable[bytes]) -> BlobInfo:
        return put_from_writer(self, chunks)

    def read(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        path = self._path(key)
        try:
            handle = open(path, "rb")  # noqa: SIM115 - closed by the generator below
        except FileNotFoundError:
            raise BlobNotFound(key) from None
        try:
            start, stop = check_range(os.fstat(handle.fileno()).st_size, start, end)
        except BaseException:
            handle.close()
            raise
        return self._chunks(handle, start, stop)

    @staticmethod
    def _chunks(handle, start: int, stop: int) -> Iterator[bytes]:
        with handle:
            handle.seek(start)
            remaining = stop - start
            while remaining > 0:
                chunk = handle.read(min(READ_CHUNK, remaining))
                if not chunk:
                    raise BlobNotFound("blob shrank while reading")
                remaining -= len(chunk)
                yield chunk

    def size(self, key: str) -> int:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            raise BlobNotFound(key) from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        path = self._path(key)
        # No directory fsync: rows go before their blobs, so a delete that a crash undoes only
        # brings back an unreferenced blob, which the collector removes again.
        path.unlink(missing_ok=True)

    def _fanout_dirs(self) -> Iterator[Path]:
        for entry in self._root.iterdir():
            if entry.is_dir() and len(entry.name) == _FANOUT:
                yield entry

    def iter_blobs(self) -> Iterator[BlobEntry]:
        for directory in self._fanout_dirs():
            for entry in directory.iterdir():
                try:
                    check_key(entry.name)
                except InvalidBlobKey:
                    continue
                if entry.name[:_FANOUT] != directory.name:
                    continue
                try:
                    created = entry.stat().st_mtime
                except FileNotFoundError:
                    continue
                yield BlobEntry(key=entry.name, created_at=created)

    def sweep_incomplete(self, older_than: float) -> int:
        removed = 0
        for directory in self._fanout_dirs():
            for entry in directory.iterdir():
                if not entry.name.startswith(_TEMP_PREFIX):
                    continue
                try:
                    if entry.stat().st_mtime < older_than:
                        entry.unlink()
                        removed += 1
                except FileNotFoundError:
                    continue
        return removed
