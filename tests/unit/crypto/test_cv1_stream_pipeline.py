"""The threaded cv1 stream: block and slot boundaries, odd sources, failures on any thread."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import threading

import pytest

from client.crypto import IntegrityError, decrypt_stream, decrypt_to_path, encrypt_stream
from client.crypto import stream as cv1_stream
from client.crypto.stream import BLOCK_SIZE, CHUNK_SIZE, MAGIC, padme_length
from vault.protocol.ids import new_id

CASE, FILE = new_id(), new_id()
KEY = bytes(range(32))


def _enc(data: bytes) -> tuple[bytes, cv1_stream.StreamResult]:
    out = io.BytesIO()
    res = encrypt_stream(io.BytesIO(data), out, KEY, case_id=CASE, file_id=FILE, version=1)
    return out.getvalue(), res


def _dec(blob: bytes, size: int, src: object = None) -> bytes:
    out = io.BytesIO()
    decrypt_stream(
        src if src is not None else io.BytesIO(blob),  # type: ignore[arg-type]
        out,
        KEY,
        case_id=CASE,
        file_id=FILE,
        version=1,
        plaintext_size=size,
    )
    return out.getvalue()


def _stream_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "cv1-stream"]


class ShortReads(io.RawIOBase):
    """A source that hands out at most `step` bytes per call and has no readinto of its own
    beyond RawIOBase's, as a pipe or socket might."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data = memoryview(data)
        self._step = step

    def readable(self) -> bool:
        return True

    def readinto(self, b):  # type: ignore[no-untyped-def]
        n = min(len(b), self._step, len(self._data))
        b[:n] = self._data[:n]
        self._data = self._data[n:]
        return n


class ReadOnly:
    """A source with read() only."""

    def __init__(self, data: bytes) -> None:
        self._f = io.BytesIO(data)

    def read(self, n: int = -1) -> bytes:
        return self._f.read(n)


class FullDisk(io.RawIOBase):
    """A destination that fails like a full disk after `room` bytes."""

    def __init__(self, room: int) -> None:
        self.room = room

    def writable(self) -> bool:
        return True

    def write(self, b):  # type: ignore[no-untyped-def]
        if len(b) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(b)
        return len(b)


# More blocks than slots, so every buffer is reused while other threads may still read it.
@pytest.mark.parametrize(
    "size", [BLOCK_SIZE - 1, BLOCK_SIZE, 2 * BLOCK_SIZE, 5 * BLOCK_SIZE + 7, 7 * BLOCK_SIZE - 1]
)
def test_roundtrip_across_blocks_and_slots(size):
    data = os.urandom(size)
    blob, res = _enc(data)
    assert res.plaintext_sha256 == hashlib.sha256(data).hexdigest()
    assert res.blob_sha256 == hashlib.sha256(blob).hexdigest()
    assert res.blob_size == len(blob)
    assert _dec(blob, size) == data
    assert not _stream_threads()


def test_padding_longer_than_one_block(monkeypatch):
    # Small blocks make the zero padding (about 64 KiB here) span several cipher calls.
    block = CHUNK_SIZE
    monkeypatch.setattr(cv1_stream, "BLOCK_SIZE", block)
    monkeypatch.setattr(cv1_stream, "_ZEROS", bytes(block))
    monkeypatch.setattr(cv1_stream, "_OUT_SIZE", block + 3 * (CHUNK_SIZE + 16) + 64)
    size = 3 * 1024 * 1024 + 5
    assert padme_length(size) - size > 3 * block
    data = os.urandom(size)
    blob, res = _enc(data)
    assert res.blob_size == len(blob) == cv1_stream.blob_size_for(size)
    assert res.blob_sha256 == hashlib.sha256(blob).hexdigest()
    assert _dec(blob, size) == data


def test_sources_with_short_reads_or_without_readinto():
    data = os.urandom(2 * BLOCK_SIZE + 12345)
    blob, res = _enc(data)
    for src in (ShortReads(data, 1000), ReadOnly(data)):
        out = io.BytesIO()
        again = encrypt_stream(src, out, KEY, case_id=CASE, file_id=FILE, version=1)  # type: ignore[arg-type]
        assert again.plaintext_sha256 == res.plaintext_sha256
        assert again.blob_size == res.blob_size
        assert _dec(out.getvalue(), len(data)) == data
    assert _dec(blob, len(data), ShortReads(blob, 777)) == data
    assert _dec(blob, len(data), ReadOnly(blob)) == data


def test_a_failed_write_surfaces_as_itself_and_stops_every_thread():
    data = os.urandom(4 * BLOCK_SIZE)
    with pytest.raises(OSError) as caught:
        encrypt_stream(
            io.BytesIO(data), FullDisk(BLOCK_SIZE), KEY, case_id=CASE, file_id=FILE, version=1
        )
    assert caught.value.errno == errno.ENOSPC
    assert not isinstance(caught.value, IntegrityError)
    blob, _ = _enc(data)
    with pytest.raises(OSError) as caught:
        decrypt_stream(
            io.BytesIO(blob),
            FullDisk(2 * BLOCK_SIZE),
            KEY,
            case_id=CASE,
            file_id=FILE,
            version=1,
            plaintext_size=len(data),
        )
    assert caught.value.errno == errno.ENOSPC
    assert not _stream_threads()


def test_tampering_deep_in_a_long_stream_fails_and_leaves_nothing(tmp_path):
    data = os.urandom(5 * BLOCK_SIZE + 3)
    blob, res = _enc(data)
    bad = bytearray(blob)
    bad[len(MAGIC) + 4 * BLOCK_SIZE + 100] ^= 1  # a chunk in the fifth block
    with pytest.raises(IntegrityError):
        _dec(bytes(bad), len(data))
    dest = tmp_path / "out.bin"
    with pytest.raises(IntegrityError):
        decrypt_to_path(
            io.BytesIO(bytes(bad)),
            dest,
            KEY,
            case_id=CASE,
            file_id=FILE,
            version=1,
            plaintext_size=len(data),
            expected_sha256=res.plaintext_sha256,
        )
    assert list(tmp_path.iterdir()) == []
    assert not _stream_threads()
