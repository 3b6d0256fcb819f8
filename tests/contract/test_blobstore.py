"""One behavioural suite run against every BlobStore implementation."""

from __future__ import annotations

import hashlib
import os
import time

import pytest

from vault.storage import (
    BlobNotFound,
    BlobStore,
    BlobStoreError,
    FilesystemBlobStore,
    InvalidBlobKey,
    InvalidRange,
    MemoryBlobStore,
)


class _Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["filesystem", "memory"])
def store(request, tmp_path) -> BlobStore:
    if request.param == "filesystem":
        return FilesystemBlobStore(tmp_path / "blobs")
    return MemoryBlobStore()


def _read_all(store: BlobStore, key: str, start: int = 0, end: int | None = None) -> bytes:
    return b"".join(store.read(key, start, end))


def test_put_returns_minted_key_size_and_hash(store):
    data = os.urandom(3 * 1024 * 1024 + 17)
    info = store.put(data[i : i + 65536] for i in range(0, len(data), 65536))
    assert len(info.key) == 32 and int(info.key, 16) >= 0
    assert info.size == len(data)
    assert info.sha256 == hashlib.sha256(data).digest()
    assert store.exists(info.key)
    assert store.size(info.key) == len(data)
    assert _read_all(store, info.key) == data


def test_each_put_mints_a_fresh_key(store):
    a = store.put([b"same"])
    b = store.put([b"same"])
    assert a.key != b.key
    assert {e.key for e in store.iter_blobs()} == {a.key, b.key}


def test_empty_blob(store):
    info = store.put([])
    assert info.size == 0
    assert info.sha256 == hashlib.sha256(b"").digest()
    assert _read_all(store, info.key) == b""


def test_range_reads(store):
    data = bytes(range(256)) * 20000
    info = store.put([data])
    assert _read_all(store, info.key, 10, 20) == data[10:20]
    assert _read_all(store, info.key, 1_000_000) == data[1_000_000:]
    assert _read_all(store, info.key, len(data)) == b""
    assert _read_all(store, info.key, 0, len(data)) == data


@pytest.mark.parametrize("start,end", [(-1, None), (5, 4), (0, 10_000), (10_001, None)])
def test_range_outside_the_blob_is_rejected(store, start, end):
    info = store.put([b"x" * 100])
    with pytest.raises(InvalidRange):
        _read_all(store, info.key, start, end)


def test_uncommitted_write_is_invisible_and_abort_leaves_nothing(store):
    writer = store.writer()
    writer.write(b"half of a file")
    assert list(store.iter_blobs()) == []
    writer.abort()
    assert list(store.iter_blobs()) == []
    assert store.sweep_incomplete(time.time() + 3600) == 0


def test_failing_source_stream_leaves_no_blob(store):
    def source():
        yield b"first chunk"
        raise ConnectionError("client went away")

    with pytest.raises(ConnectionError):
        store.put(source())
    assert list(store.iter_blobs()) == []


def test_delete_is_idempotent(store):
    info = store.put([b"data"])
    store.delete(info.key)
    assert not store.exists(info.key)
    store.delete(info.key)
    with pytest.raises(BlobNotFound):
        _read_all(store, info.key)
    with pytest.raises(BlobNotFound):
        store.size(info.key)


def test_missing_key_is_not_found(store):
    with pytest.raises(BlobNotFound):
        _read_all(store, "0" * 32)
    assert not store.exists("0" * 32)


@pytest.mark.parametrize(
    "key",
    ["../../etc/passwd", "", "A" * 32, "0" * 31, "0" * 33, "00/" + "0" * 29, "..", None, 7],
)
def test_keys_not_minted_by_the_store_are_refused(store, key):
    for call in (store.exists, store.size, store.delete, lambda k: _read_all(store, k)):
        with pytest.raises(InvalidBlobKey):
            call(key)


def test_abandoned_write_is_swept_after_its_age(tmp_path):
    clock = _Clock()
    stores = [MemoryBlobStore(clock=clock), FilesystemBlobStore(tmp_path / "b")]
    for store in stores:
        writer = store.writer()
        writer.write(b"crash happens here")
        started = time.time() if isinstance(store, FilesystemBlobStore) else clock.now
        # Not old enough yet: kept.
        assert store.sweep_incomplete(started - 60) == 0
        assert store.sweep_incomplete(started + 60) == 1
        # A swept write can no longer become a blob.
        with pytest.raises((BlobStoreError, OSError)):
            writer.commit()
        assert list(store.iter_blobs()) == []


def test_iter_blobs_reports_creation_time():
    clock = _Clock()
    store = MemoryBlobStore(clock=clock)
    info = store.put([b"a"])
    clock.now += 100
    (entry,) = list(store.iter_blobs())
    assert entry.key == info.key and entry.created_at == clock.now - 100


def test_filesystem_layout_is_atomic_and_contained(tmp_path):
    store = FilesystemBlobStore(tmp_path / "blobs")
    writer = store.writer()
    writer.write(b"secret ciphertext")
    # Before commit, no file carries a key-shaped name.
    names = [p.name for p in (tmp_path / "blobs").rglob("*") if p.is_file()]
    assert all(n.startswith(".tmp-") for n in names)
    info = writer.commit()
    files = [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()]
    assert [p.name for p in files] == [info.key]
    assert files[0].parent.parent == (tmp_path / "blobs").resolve()
    assert oct(files[0].stat().st_mode & 0o777) == "0o600"
    # Stray files in the store are never reported as blobs.
    (tmp_path / "blobs" / info.key[:2] / "notes.txt").write_text("x")
    (tmp_path / "blobs" / "zz").mkdir()
    (tmp_path / "blobs" / "zz" / ("f" * 32)).write_text("x")
    assert [e.key for e in store.iter_blobs()] == [info.key]
