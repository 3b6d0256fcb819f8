"""File content: round trips, and every way a server could cut, reorder or move a blob."""

from __future__ import annotations

import hashlib
import io
import os
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from client.crypto import (
    IntegrityError,
    blob_size_for,
    decrypt_stream,
    decrypt_to_path,
    encrypt_stream,
    new_file_key,
    padme_length,
)
from client.crypto.stream import CHUNK_SIZE, COBBLESTONE_OVERHEAD, MAGIC
from vault.protocol.ids import new_id

KIB = 1024
CASE, FILE = new_id(), new_id()
HEADER = len(MAGIC) + COBBLESTONE_OVERHEAD
SEALED_CHUNK = CHUNK_SIZE + 16


def _enc(data, key, case=CASE, file=FILE, version=1):
    out = io.BytesIO()
    res = encrypt_stream(io.BytesIO(data), out, key, case_id=case, file_id=file, version=version)
    return out.getvalue(), res


def _dec(blob, key, size, case=CASE, file=FILE, version=1):
    out = io.BytesIO()
    decrypt_stream(
        io.BytesIO(blob), out, key, case_id=case, file_id=file, version=version, plaintext_size=size
    )
    return out.getvalue()


@pytest.mark.parametrize("size", [0, 1, 64 * KIB - 1, 64 * KIB, 64 * KIB + 1, 3 * 1024 * KIB + 5])
def test_roundtrip_sizes(size):
    data = os.urandom(size)
    key = new_file_key()
    blob, res = _enc(data, key)
    assert res.plaintext_size == size
    assert res.plaintext_sha256 == hashlib.sha256(data).hexdigest()
    assert res.blob_sha256 == hashlib.sha256(blob).hexdigest()
    assert res.blob_size == len(blob) == blob_size_for(size)
    assert _dec(blob, key, size) == data


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=70 * KIB))
def test_roundtrip_property(data):
    key = new_file_key()
    blob, _ = _enc(data, key)
    assert _dec(blob, key, len(data)) == data


def test_padme_bounds_and_monotonic():
    prev = 0
    for n in list(range(0, 5000)) + [10**6, 10**9 + 7, 2**40 + 3]:
        p = padme_length(n)
        assert n <= p <= n * 1.12 + 1 and p >= prev
        prev = p
    # Sizes that differ by a few bytes share one blob length.
    assert padme_length(1_000_000) == padme_length(1_000_001)


def test_every_byte_flip_fails():
    key = new_file_key()
    data = b"privileged and confidential"
    blob, _ = _enc(data, key)
    for i in range(len(blob)):
        bad = bytearray(blob)
        bad[i] ^= 0x01
        with pytest.raises(IntegrityError):
            _dec(bytes(bad), key, len(data))


def _chunks(blob):
    body = blob[HEADER:]
    return blob[:HEADER], [body[i : i + SEALED_CHUNK] for i in range(0, len(body), SEALED_CHUNK)]


@pytest.fixture
def four_chunks():
    key = new_file_key()
    data = os.urandom(3 * CHUNK_SIZE + 100)  # padded length stays under four chunks
    blob, _ = _enc(data, key)
    head, chunks = _chunks(blob)
    assert len(chunks) == 4
    return key, data, head, chunks


def test_chunk_swap_fails(four_chunks):
    key, data, head, c = four_chunks
    with pytest.raises(IntegrityError):
        _dec(head + c[1] + c[0] + c[2] + c[3], key, len(data))


def test_chunk_duplicate_fails(four_chunks):
    key, data, head, c = four_chunks
    with pytest.raises(IntegrityError):
        _dec(head + c[0] + c[0] + c[1] + c[2] + c[3], key, len(data))


def test_chunk_drop_fails(four_chunks):
    key, data, head, c = four_chunks
    with pytest.raises(IntegrityError):
        _dec(head + c[0] + c[2] + c[3], key, len(data))


@pytest.mark.parametrize("keep", [0, 1, 2, 3])
def test_truncation_at_chunk_boundary_fails(four_chunks, keep):
    key, data, head, c = four_chunks
    with pytest.raises(IntegrityError):
        _dec(head + b"".join(c[:keep]), key, len(data))


def test_truncation_inside_a_chunk_and_trailing_garbage_fail(four_chunks):
    key, data, head, c = four_chunks
    blob = head + b"".join(c)
    for cut in (len(blob) - 1, len(blob) - 17, HEADER - 1, len(MAGIC), 3):
        with pytest.raises(IntegrityError):
            _dec(blob[:cut], key, len(data))
    with pytest.raises(IntegrityError):
        _dec(blob + b"\x00", key, len(data))


def test_splice_from_another_file_under_the_same_key_fails(four_chunks):
    # Worst case: same key and same coordinates, different encryption. Still refused.
    key, data, head, c = four_chunks
    other, _ = _enc(os.urandom(len(data)), key)
    _, oc = _chunks(other)
    with pytest.raises(IntegrityError):
        _dec(head + c[0] + oc[1] + c[2] + c[3], key, len(data))


@pytest.mark.parametrize("where", [{"case": new_id()}, {"file": new_id()}, {"version": 2}])
def test_blob_moved_to_other_case_file_or_version_fails(where):
    key = new_file_key()
    data = b"x" * 1000
    blob, _ = _enc(data, key)
    with pytest.raises(IntegrityError):
        _dec(blob, key, len(data), **where)


def test_wrong_key_and_wrong_size_fail():
    key = new_file_key()
    data = os.urandom(5000).replace(b"\0", b"\1")  # no zero byte can pass as padding
    blob, _ = _enc(data, key)
    with pytest.raises(IntegrityError):
        _dec(blob, new_file_key(), len(data))
    # A size from other metadata: the padded length or the padding check catches it.
    for size in (len(data) + 1, len(data) - 1, 0, padme_length(len(data)) + 1):
        if padme_length(size) == padme_length(len(data)) and size >= len(data):
            continue  # same padded length, and the extra bytes are zero padding
        with pytest.raises(IntegrityError):
            _dec(blob, key, size)


def test_nonzero_padding_is_refused():
    # Someone holding the file key hides bytes in what metadata claims is padding.
    key = new_file_key()
    size = 1000
    hidden = b"a" * size + b"\x01" * (padme_length(size) - size)
    assert len(hidden) == padme_length(len(hidden)) and len(hidden) > size
    blob, _ = _enc(hidden, key)
    with pytest.raises(IntegrityError):
        _dec(blob, key, size)


def test_wrong_magic_is_refused():
    key = new_file_key()
    blob, _ = _enc(b"data", key)
    with pytest.raises(IntegrityError):
        _dec(b"casevault/cv2\n" + blob[len(MAGIC) :], key, 4)


def _to_path(blob, key, dest, size, sha, **kw):
    return decrypt_to_path(
        io.BytesIO(blob),
        dest,
        key,
        case_id=CASE,
        file_id=FILE,
        version=1,
        plaintext_size=size,
        expected_sha256=sha,
        **kw,
    )


def test_decrypt_to_path_success(tmp_path):
    key = new_file_key()
    data = os.urandom(100 * KIB)
    blob, res = _enc(data, key)
    dest = tmp_path / "out.pdf"
    _to_path(blob, key, dest, len(data), res.plaintext_sha256, expected_blob_sha256=res.blob_sha256)
    assert dest.read_bytes() == data
    with pytest.raises(FileExistsError):
        _to_path(blob, key, dest, len(data), res.plaintext_sha256)
    _to_path(blob, key, dest, len(data), res.plaintext_sha256, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.pdf"]


@pytest.mark.parametrize("attack", ["truncate", "flip", "hash", "blob_hash"])
def test_decrypt_to_path_leaves_nothing_on_failure(tmp_path, attack):
    key = new_file_key()
    data = os.urandom(200 * KIB)
    blob, res = _enc(data, key)
    sha, blob_sha = res.plaintext_sha256, None
    if attack == "truncate":
        blob = blob[: HEADER + 5 * SEALED_CHUNK]  # whole authentic chunks, missing the end
    elif attack == "flip":
        blob = blob[:-1] + bytes([blob[-1] ^ 1])
    elif attack == "hash":
        sha = "0" * 64
    else:
        blob_sha = "0" * 64
    dest = tmp_path / "evidence.bin"
    with pytest.raises(IntegrityError, match="failed verification"):
        _to_path(blob, key, dest, len(data), sha, expected_blob_sha256=blob_sha)
    assert list(tmp_path.iterdir()) == []


def test_memory_is_flat_in_file_size(tmp_path):
    key = new_file_key()
    src = tmp_path / "big"
    with open(src, "wb") as f:
        for _ in range(24):
            f.write(os.urandom(1024 * KIB))
    enc = tmp_path / "big.cv1"
    tracemalloc.start()
    try:
        with open(src, "rb") as s, open(enc, "wb") as d:
            res = encrypt_stream(s, d, key, case_id=CASE, file_id=FILE, version=1)
        with open(enc, "rb") as s:
            decrypt_to_path(
                s,
                tmp_path / "back",
                key,
                case_id=CASE,
                file_id=FILE,
                version=1,
                plaintext_size=res.plaintext_size,
                expected_sha256=res.plaintext_sha256,
            )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * KIB  # a 24 MiB file goes through a few 1 MiB buffers
    assert (tmp_path / "back").read_bytes() == src.read_bytes()
