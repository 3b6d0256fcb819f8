"""File content: Padmé padding and C2SP chunked encryption (Cobblestone-256), file to file.

Blob layout: `MAGIC || Cobblestone-256 ciphertext of (plaintext || zero padding)` with the
context binding the format label, case id, file id and version. Memory use is a few buffers of
READ_SIZE whatever the file size. The true plaintext size travels in the encrypted metadata.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from cryptography.cobblestone import Cobblestone256Decryptor, Cobblestone256Encryptor
from cryptography.exceptions import InvalidTag

from client.crypto import _aead
from client.crypto.errors import IntegrityError
from client.crypto.kdf import subkey

MAGIC = b"casevault/cv1\n"
LABEL_FILE_CONTENT = "cv1/file-content"
PERSON_CONTENT = b"cv1/content"
CHUNK_SIZE = 16 * 1024  # Cobblestone's chunk: 16 KiB plaintext + 16-byte tag
COBBLESTONE_OVERHEAD = 56
READ_SIZE = 1024 * 1024
_ENC_BUF = READ_SIZE + (READ_SIZE // CHUNK_SIZE + 2) * 16 + COBBLESTONE_OVERHEAD + 4096
_ZEROS = bytes(READ_SIZE)


class _BackgroundSha256:
    """SHA-256 of a stream of immutable blocks, computed on a second thread.

    hashlib releases the GIL for large inputs, so hashing one side of the stream here while the
    caller encrypts or decrypts and hashes the other side uses two cores instead of one.
    """

    def __init__(self, pool: ThreadPoolExecutor) -> None:
        self._hash = hashlib.sha256()
        self._pool = pool
        self._pending: Future[None] | None = None

    def update(self, block: bytes) -> None:
        # Only immutable bytes may be hashed behind the caller's back.
        block = block if isinstance(block, bytes) else bytes(block)
        if self._pending is not None:
            self._pending.result()
        self._pending = self._pool.submit(self._hash.update, block)

    def hexdigest(self) -> str:
        if self._pending is not None:
            self._pending.result()
            self._pending = None
        return self._hash.hexdigest()


@dataclass(frozen=True)
class StreamResult:
    plaintext_size: int
    plaintext_sha256: str
    blob_size: int
    blob_sha256: str


def padme_length(size: int) -> int:
    """Padmé: round up so only O(log log size) bits of the length leak; overhead <= 12%."""
    if size < 0:
        raise ValueError("size is not negative")
    if size < 2:
        return size
    e = size.bit_length() - 1  # floor(log2 size)
    s = e.bit_length()  # floor(log2 e) + 1
    mask = (1 << (e - s)) - 1
    return (size + mask) & ~mask


def blob_size_for(plaintext_size: int) -> int:
    """Exact blob size for a plaintext size (lets the server and client check lengths)."""
    padded = padme_length(plaintext_size)
    chunks = padded // CHUNK_SIZE + 1  # the final chunk may be empty but is always present
    return len(MAGIC) + COBBLESTONE_OVERHEAD + padded + chunks * 16


def content_context(case_id: str, file_id: str, version: int) -> bytes:
    return _aead.labelled(LABEL_FILE_CONTENT, case_id, file_id, version)


def _content_key(file_key: bytes) -> bytes:
    if not isinstance(file_key, bytes) or len(file_key) != 32:
        raise ValueError("a file key is 32 bytes")
    return subkey(file_key, PERSON_CONTENT)


def encrypt_stream(
    src: BinaryIO, dst: BinaryIO, file_key: bytes, *, case_id: str, file_id: str, version: int
) -> StreamResult:
    """Encrypt everything readable from src into dst; returns sizes and both SHA-256 hashes."""
    enc = Cobblestone256Encryptor(
        _content_key(file_key), content_context(case_id, file_id, version)
    )
    with ThreadPoolExecutor(max_workers=1) as pool:
        return _encrypt(src, dst, enc, _BackgroundSha256(pool))


def _encrypt(
    src: BinaryIO, dst: BinaryIO, enc: Cobblestone256Encryptor, plain_hash: _BackgroundSha256
) -> StreamResult:
    blob_hash = hashlib.sha256()
    buf = bytearray(_ENC_BUF)
    view = memoryview(buf)
    blob_size = 0

    def emit(data: bytes | memoryview) -> None:
        nonlocal blob_size
        if data:
            dst.write(data)
            blob_hash.update(data)
            blob_size += len(data)

    emit(MAGIC)
    size = 0
    while block := src.read(READ_SIZE):
        plain_hash.update(block)
        size += len(block)
        emit(view[: enc.update_into(block, buf)])
    pad = padme_length(size) - size
    while pad:
        step = min(pad, READ_SIZE)
        emit(view[: enc.update_into(_ZEROS[:step], buf)])
        pad -= step
    emit(enc.finalize())
    return StreamResult(size, plain_hash.hexdigest(), blob_size, blob_hash.hexdigest())


def decrypt_stream(
    src: BinaryIO,
    dst: BinaryIO,
    file_key: bytes,
    *,
    case_id: str,
    file_id: str,
    version: int,
    plaintext_size: int,
) -> StreamResult:
    """Decrypt src into dst. Chunks reach dst before the end is authenticated, so dst MUST be
    a scratch file that is discarded on error (decrypt_to_path does that)."""
    if not isinstance(plaintext_size, int) or plaintext_size < 0:
        raise IntegrityError("file")
    with ThreadPoolExecutor(max_workers=1) as pool:
        return _decrypt(
            src, dst, file_key, (case_id, file_id, version), plaintext_size, _BackgroundSha256(pool)
        )


def _decrypt(
    src: BinaryIO,
    dst: BinaryIO,
    file_key: bytes,
    coords: tuple[str, str, int],
    plaintext_size: int,
    blob_hash: _BackgroundSha256,
) -> StreamResult:
    padded = padme_length(plaintext_size)
    plain_hash = hashlib.sha256()
    head = src.read(len(MAGIC))
    blob_hash.update(head)
    blob_size = len(head)
    if head != MAGIC:
        raise IntegrityError("file")
    dec = Cobblestone256Decryptor(_content_key(file_key), content_context(*coords))
    buf = bytearray(READ_SIZE)
    view = memoryview(buf)
    released = 0  # plaintext (with padding) produced so far

    def take(out: memoryview | bytes) -> None:
        nonlocal released
        end = released + len(out)
        if end > padded:
            raise IntegrityError("file")
        keep = max(0, min(len(out), plaintext_size - released))
        if keep:
            dst.write(out[:keep])
            plain_hash.update(out[:keep])
        # Padding MUST be zero, so one plaintext has one blob length and nothing hides there.
        if keep < len(out) and bytes(out[keep:]).strip(b"\0"):
            raise IntegrityError("file")
        released = end

    try:
        while block := src.read(READ_SIZE):
            blob_hash.update(block)
            blob_size += len(block)
            take(view[: dec.update_into(block, buf)])
        take(dec.finalize())
    except (InvalidTag, ValueError) as exc:
        raise IntegrityError("file") from exc
    if released != padded:
        raise IntegrityError("file")
    return StreamResult(plaintext_size, plain_hash.hexdigest(), blob_size, blob_hash.hexdigest())


def decrypt_to_path(
    src: BinaryIO,
    dest: str | os.PathLike[str],
    file_key: bytes,
    *,
    case_id: str,
    file_id: str,
    version: int,
    plaintext_size: int,
    expected_sha256: str,
    expected_blob_sha256: str | None = None,
    overwrite: bool = False,
) -> StreamResult:
    """Decrypt to a temporary file beside dest; rename only after the stream finalised and the
    plaintext (and, when given, blob) SHA-256 match. On any failure no file is left behind."""
    dest = Path(dest)
    if not overwrite and dest.exists():
        raise FileExistsError(f"{dest} already exists")
    fd, tmp_name = tempfile.mkstemp(prefix=".casevault-", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            result = decrypt_stream(
                src,
                out,
                file_key,
                case_id=case_id,
                file_id=file_id,
                version=version,
                plaintext_size=plaintext_size,
            )
            if result.plaintext_sha256 != expected_sha256 or (
                expected_blob_sha256 is not None and result.blob_sha256 != expected_blob_sha256
            ):
                raise IntegrityError("file")
            out.flush()
            os.fsync(out.fileno())
        if overwrite:
            os.replace(tmp, dest)
        else:
            # link() refuses to replace a file that appeared meanwhile.
            os.link(tmp, dest)
            tmp.unlink()
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return result
