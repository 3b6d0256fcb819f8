"""T7: a hostile server or a flaky disk alters the blob: flipped bytes, chunks reordered,
duplicated, dropped, truncated, extended or spliced from another encryption.

Every variant must fail with the one IntegrityError and leave no output file behind.
"""

from __future__ import annotations

import os

import pytest
from attack_kit import open_blob, seal_file

from client.crypto.errors import IntegrityError
from client.crypto.stream import CHUNK_SIZE, COBBLESTONE_OVERHEAD, MAGIC

HEADER = len(MAGIC) + COBBLESTONE_OVERHEAD
SEALED_CHUNK = CHUNK_SIZE + 16


def _chunks(blob: bytes) -> tuple[bytes, list[bytes]]:
    body = blob[HEADER:]
    return blob[:HEADER], [body[i : i + SEALED_CHUNK] for i in range(0, len(body), SEALED_CHUNK)]


def _refused(sealed, blob, tmp_path) -> None:
    dest = tmp_path / "out.bin"
    with pytest.raises(IntegrityError, match="^file failed verification$"):
        open_blob(sealed, blob, dest)
    assert os.listdir(tmp_path) == [], "a failed download left a file behind"


@pytest.fixture(scope="module")
def small():
    return seal_file(b"Privileged: client's account of 3 March. " * 3)


@pytest.fixture(scope="module")
def multi():
    # Four full chunks and a partial one (after Padme padding).
    return seal_file(os.urandom(4 * CHUNK_SIZE + 1000))


def test_T7_genuine_blob_decrypts(multi, tmp_path):
    open_blob(multi, multi.blob, tmp_path / "out.bin")
    assert (tmp_path / "out.bin").read_bytes() == multi.plaintext


def test_T7_every_flipped_byte_fails(small, tmp_path):
    for position in range(len(small.blob)):
        for mask in (0x01, 0x80):
            mauled = bytearray(small.blob)
            mauled[position] ^= mask
            _refused(small, bytes(mauled), tmp_path)


def test_T7_flipped_byte_in_every_chunk_of_a_large_file_fails(multi, tmp_path):
    header, chunks = _chunks(multi.blob)
    assert len(chunks) >= 5
    offsets = {0, 1, CHUNK_SIZE // 2, CHUNK_SIZE - 1, CHUNK_SIZE, SEALED_CHUNK - 1}
    for index, chunk in enumerate(chunks):
        for offset in sorted(o for o in offsets if o < len(chunk)):
            start = HEADER + index * SEALED_CHUNK + offset
            mauled = bytearray(multi.blob)
            mauled[start] ^= 0x01
            _refused(multi, bytes(mauled), tmp_path)


def test_T7_reordered_duplicated_dropped_truncated_or_spliced_chunks_fail(multi, tmp_path):
    header, c = _chunks(multi.blob)
    # Same plaintext, same key, same ids, encrypted again: its chunks must not mix with ours.
    again = seal_file(
        multi.plaintext,
        case_id=multi.case_id,
        file_id=multi.file_id,
        file_key=multi.file_key,
    )
    other_header, o = _chunks(again.blob)
    variants = {
        "swap 0 and 1": [c[1], c[0], *c[2:]],
        "swap last two": [*c[:-2], c[-1], c[-2]],
        "duplicate 0": [c[0], c[0], *c[1:]],
        "drop 1": [c[0], *c[2:]],
        "drop final": c[:-1],
        "final repeated": [*c, c[-1]],
        "splice chunk 2 from re-encryption": [*c[:2], o[2], *c[3:]],
        "splice final from re-encryption": [*c[:-1], o[-1]],
    }
    for name, chunks in variants.items():
        blob = header + b"".join(chunks)
        assert blob != multi.blob, name
        _refused(multi, blob, tmp_path)
    _refused(multi, other_header + b"".join(c), tmp_path)
    for cut in (1, 16, SEALED_CHUNK, len(multi.blob) - HEADER):
        _refused(multi, multi.blob[:-cut], tmp_path)
    _refused(multi, multi.blob + b"\x00", tmp_path)
    _refused(multi, multi.blob + c[-1], tmp_path)
    _refused(multi, b"", tmp_path)
    _refused(multi, MAGIC.replace(b"cv1", b"cv2") + multi.blob[len(MAGIC) :], tmp_path)


def test_T7_failed_download_leaves_no_output_file(multi, tmp_path):
    # The failure is at the very last chunk, after almost everything was written to disk.
    mauled = bytearray(multi.blob)
    mauled[-1] ^= 0x01
    dest = tmp_path / "evidence.bin"
    with pytest.raises(IntegrityError):
        open_blob(multi, bytes(mauled), dest)
    assert not dest.exists()
    assert os.listdir(tmp_path) == []
