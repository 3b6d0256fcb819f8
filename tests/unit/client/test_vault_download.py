"""Decrypting a blob while it arrives: the output appears only for a whole, verified blob."""

from __future__ import annotations

import hashlib
import io
import os
import threading
import time

import pytest

from client.crypto import IntegrityError, decrypt_to_path, encrypt_stream, new_file_key
from client.vault_download import (
    DecryptorStopped,
    FetchAborted,
    GrowingBlob,
    fetch_while_decrypting,
)

CASE, FILE = "a" * 32, "b" * 32
SLICE = 100_003  # odd, so writes never line up with the cipher's blocks


@pytest.fixture(name="sealed")
def sealed_blob():
    data = os.urandom(3 * 1024 * 1024 + 17)
    key = new_file_key()
    out = io.BytesIO()
    encrypt_stream(io.BytesIO(data), out, key, case_id=CASE, file_id=FILE, version=1)
    return data, key, out.getvalue()


def _decryptor(dest, key, data):
    def decrypt(blob):
        decrypt_to_path(blob, dest, key, case_id=CASE, file_id=FILE, version=1,
                        plaintext_size=len(data),
                        expected_sha256=hashlib.sha256(data).hexdigest(),
                        blob_verified_by_caller=True)
    return decrypt


def _writer(path, blob_bytes, *, stop_at=None, fail=None):
    """A fetch that appends `blob_bytes` in slices, telling the reader as it goes."""
    def fetch(blob):
        with open(path, "r+b") as out:
            written = 0
            while written < len(blob_bytes):
                if stop_at is not None and written >= stop_at:
                    raise fail
                piece = blob_bytes[written:written + SLICE]
                out.write(piece)
                out.flush()
                written += len(piece)
                blob.grew(written)
        return "log-index"
    return fetch


def test_output_is_the_plaintext_once_the_fetch_finished(tmp_path, sealed):
    data, key, sealed_bytes = sealed
    blob_path, dest = tmp_path / "blob", tmp_path / "out.bin"
    result = fetch_while_decrypting(blob_path, _writer(blob_path, sealed_bytes),
                                    _decryptor(dest, key, data))
    assert result == "log-index"
    assert dest.read_bytes() == data


def test_decryptor_waits_for_the_verified_end_before_publishing(tmp_path, sealed):
    """Every byte is there, but until the fetch returns (its hash check) nothing is renamed."""
    data, key, sealed_bytes = sealed
    blob_path, dest = tmp_path / "blob", tmp_path / "out.bin"

    def fetch(blob):
        blob_path.write_bytes(sealed_bytes)
        blob.grew(len(sealed_bytes))
        time.sleep(0.5)  # time for the decryptor to run ahead as far as it can
        assert not dest.exists()
        return 7

    assert fetch_while_decrypting(blob_path, fetch, _decryptor(dest, key, data)) == 7
    assert dest.read_bytes() == data


def test_a_fetch_that_fails_leaves_no_output(tmp_path, sealed):
    data, key, sealed_bytes = sealed
    blob_path, dest = tmp_path / "blob", tmp_path / "out.bin"
    with pytest.raises(ConnectionError):
        fetch_while_decrypting(
            blob_path,
            _writer(blob_path, sealed_bytes, stop_at=len(sealed_bytes) // 2,
                    fail=ConnectionError("dropped")),
            _decryptor(dest, key, data))
    assert not dest.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["blob"]  # no temporary output left


def test_a_blob_failing_its_hash_check_after_every_byte_leaves_no_output(tmp_path, sealed):
    """The fetch received everything, then found the SHA-256 wrong: no rename, its error."""
    data, key, sealed_bytes = sealed
    blob_path, dest = tmp_path / "blob", tmp_path / "out.bin"

    def fetch(blob):
        _writer(blob_path, sealed_bytes)(blob)
        raise IntegrityError("file")

    with pytest.raises(IntegrityError):
        fetch_while_decrypting(blob_path, fetch, _decryptor(dest, key, data))
    assert not dest.exists()


def test_tampered_bytes_stop_the_fetch_early(tmp_path, sealed):
    data, key, sealed_bytes = sealed
    bad = bytearray(sealed_bytes)
    bad[200_000] ^= 1
    blob_path, dest = tmp_path / "blob", tmp_path / "out.bin"
    sent = []

    def fetch(blob):
        with open(blob_path, "r+b") as out:
            for start in range(0, len(bad), SLICE):
                if start >= 1024 * 1024:
                    # The flipped byte is well behind: wait for the decryptor to give up.
                    deadline = time.monotonic() + 10
                    while not blob.reader_failed and time.monotonic() < deadline:
                        time.sleep(0.01)
                out.write(bad[start:start + SLICE])
                out.flush()
                sent.append(start)
                blob.grew(min(start + SLICE, len(bad)))
        return "log-index"

    with pytest.raises(IntegrityError):
        fetch_while_decrypting(blob_path, fetch, _decryptor(dest, key, data))
    assert not dest.exists()
    # The next slice after the failure was refused: the rest of the blob was never fetched.
    assert sent[-1] < len(bad) - SLICE


def test_growing_blob_reads_only_what_was_announced(tmp_path):
    path = tmp_path / "blob"
    path.write_bytes(b"0123456789")
    blob = GrowingBlob(path)
    try:
        blob.grew(4)
        buf = bytearray(8)
        assert blob.readinto(buf) == 4 and bytes(buf[:4]) == b"0123"
        blob.grew(10)
        blob.finish()
        assert blob.read(100) == b"456789"
        assert blob.readinto(bytearray(4)) == 0
    finally:
        blob.close()


def test_growing_blob_refuses_bytes_the_file_does_not_hold(tmp_path):
    path = tmp_path / "blob"
    path.write_bytes(b"abc")
    blob = GrowingBlob(path)
    try:
        blob.grew(10)  # a writer bug or a file cut behind its back
        assert blob.read(3) == b"abc"
        with pytest.raises(FetchAborted):
            blob.readinto(bytearray(4))
    finally:
        blob.close()


def test_a_failed_fetch_wakes_a_waiting_reader(tmp_path):
    path = tmp_path / "blob"
    path.write_bytes(b"")
    blob = GrowingBlob(path)
    errors = []

    def read():
        try:
            blob.readinto(bytearray(4))
        except FetchAborted as exc:
            errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    blob.fail()
    reader.join(timeout=10)
    blob.close()
    assert not reader.is_alive() and len(errors) == 1


def test_grew_after_the_reader_failed_stops_the_writer(tmp_path):
    path = tmp_path / "blob"
    path.write_bytes(b"")
    blob = GrowingBlob(path)
    blob.reader_failed = True
    with pytest.raises(DecryptorStopped):
        blob.grew(1)
    blob.close()
