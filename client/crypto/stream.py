"""File content: Padmé padding and C2SP chunked encryption (Cobblestone-256), file to file.

Blob layout: `MAGIC || Cobblestone-256 ciphertext of (plaintext || zero padding)` with the
context binding the format label, case id, file id and version. Memory use is a few buffers of
BLOCK_SIZE whatever the file size. The true plaintext size travels in the encrypted metadata.
"""

from __future__ import annotations

import hashlib
import os
import queue
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeVar

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
# One read, one cipher call, one write. On 2 busy cores, 256 KiB blocks with 6 in flight did
# better in most runs than 1 or 4 MiB blocks with 2-6 (noisy figures); the CPU cost per byte is
# the same, and a deeper queue of smaller blocks rides out a descheduled thread.
BLOCK_SIZE = 256 * 1024
READ_SIZE = BLOCK_SIZE  # older name, kept for callers
# The cipher buffers up to one chunk between calls, so its output can exceed its input by a
# chunk plus the tags and header: leave room for that.
_OUT_SIZE = BLOCK_SIZE + 2 * (CHUNK_SIZE + 16) + (BLOCK_SIZE // CHUNK_SIZE + 2) * 16 + 64
_SLOTS = 6  # blocks in flight; memory stays a few MiB whatever the file size
_ZEROS = bytes(BLOCK_SIZE)

_Job = tuple[memoryview, memoryview]  # (input of the cipher, output of the cipher) of a block
_T = TypeVar("_T")


class _Lane:
    """A worker thread that runs one step (a hash, a write) on every block, in order.

    Each SHA-256 costs more than the cipher and writing to the page cache costs about as much
    again; hashlib, file writes and the cipher all release the GIL on large buffers. So the
    caller only reads and runs the cipher, and the two hashes and the write each get a lane:
    the stream then uses every core. A lane holds at most _SLOTS blocks: the caller takes a
    token before it fills a slot and the lane hands one back per finished block, so a slot is
    never refilled while a lane still reads it.
    """

    _STOP = None

    def __init__(self, step: Callable[[_Job], None]) -> None:
        self._step = step
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._tokens: queue.SimpleQueue[None] = queue.SimpleQueue()
        for _ in range(_SLOTS):
            self._tokens.put(None)
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="cv1-stream", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (job := self._jobs.get()) is not self._STOP:
            if self.error is None:  # after a failure, only drain so the caller never blocks
                try:
                    self._step(job)
                except BaseException as exc:  # re-raised on the caller's thread
                    self.error = exc
            self._tokens.put(None)

    def reserve(self) -> None:
        self._tokens.get()
        if self.error is not None:
            raise self.error

    def submit(self, job: _Job) -> None:
        self._jobs.put(job)

    def stop(self) -> None:
        self._jobs.put(self._STOP)
        self._thread.join()


class _Pipeline:
    """A ring of _SLOTS (input, output) buffer pairs shared by the caller and some lanes."""

    def __init__(self, steps: list[Callable[[_Job], None]]) -> None:
        self._slots = [(bytearray(BLOCK_SIZE), bytearray(_OUT_SIZE)) for _ in range(_SLOTS)]
        self._next = 0
        self._lanes: list[_Lane] = []
        for step in steps:
            self._lanes.append(_Lane(step))

    def slot(self) -> tuple[memoryview, memoryview]:
        """Free buffers for the next block (waits until every lane is done with them)."""
        for lane in self._lanes:
            lane.reserve()
        inbuf, outbuf = self._slots[self._next]
        self._next = (self._next + 1) % _SLOTS
        return memoryview(inbuf), memoryview(outbuf)

    def submit(self, job: _Job) -> None:
        for lane in self._lanes:
            lane.submit(job)

    def close(self) -> None:
        """Wait for every lane; raise the first lane failure (after all have stopped)."""
        for lane in self._lanes:
            lane.stop()
        for lane in self._lanes:
            if lane.error is not None:
                raise lane.error


_EMPTY = memoryview(b"")


def _readinto(src: BinaryIO, view: memoryview) -> int:
    readinto = getattr(src, "readinto", None)
    if readinto is not None:
        return readinto(view) or 0
    data = src.read(len(view))
    view[: len(data)] = data
    return len(data)


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
    plain_hash, blob_hash = hashlib.sha256(), hashlib.sha256(MAGIC)
    dst.write(MAGIC)
    pipe = _Pipeline(
        [
            lambda job: plain_hash.update(job[0]),
            lambda job: blob_hash.update(job[1]),
            lambda job: dst.write(job[1]),
        ]
    )
    try:
        size, blob_size = _encrypt(enc, src, pipe)
    finally:
        pipe.close()
    return StreamResult(size, plain_hash.hexdigest(), blob_size, blob_hash.hexdigest())


def _encrypt(enc: Cobblestone256Encryptor, src: BinaryIO, pipe: _Pipeline) -> tuple[int, int]:
    size, blob_size = 0, len(MAGIC)
    while True:
        inview, outview = pipe.slot()
        n = _readinto(src, inview)
        if n == 0:
            pipe.submit((_EMPTY, _EMPTY))
            break
        out = outview[: enc.update_into(inview[:n], outview)]
        pipe.submit((inview[:n], out))
        size += n
        blob_size += len(out)
    pad = padme_length(size) - size
    while pad:
        step = min(pad, BLOCK_SIZE)
        inview, outview = pipe.slot()
        out = outview[: enc.update_into(_ZEROS[:step], outview)]
        pipe.submit((_EMPTY, out))
        blob_size += len(out)
        pad -= step
    final = memoryview(enc.finalize())
    pipe.slot()
    pipe.submit((_EMPTY, final))
    return size, blob_size + len(final)


def decrypt_stream(
    src: BinaryIO,
    dst: BinaryIO,
    file_key: bytes,
    *,
    case_id: str,
    file_id: str,
    version: int,
    plaintext_size: int,
    hash_blob: bool = True,
) -> StreamResult:
    """Decrypt src into dst. Chunks reach dst before the end is authenticated, so dst MUST be
    a scratch file that is discarded on error (decrypt_to_path does that). Without
    `hash_blob` the result's blob_sha256 is empty (the caller hashed the blob already)."""
    if not isinstance(plaintext_size, int) or plaintext_size < 0:
        raise IntegrityError("file")
    key = _content_key(file_key)
    head = src.read(len(MAGIC))
    if head != MAGIC:
        raise IntegrityError("file")
    dec = Cobblestone256Decryptor(key, content_context(case_id, file_id, version))
    blob_hash, plain_hash = hashlib.sha256(MAGIC), hashlib.sha256()
    steps: list[Callable[[_Job], None]] = [
        lambda job: plain_hash.update(job[1]),
        lambda job: dst.write(job[1]),
    ]
    if hash_blob:
        steps.insert(0, lambda job: blob_hash.update(job[0]))
    pipe = _Pipeline(steps)
    try:
        blob_size = _decrypt(dec, src, plaintext_size, pipe)
    finally:
        pipe.close()
    blob_sha256 = blob_hash.hexdigest() if hash_blob else ""
    return StreamResult(plaintext_size, plain_hash.hexdigest(), blob_size, blob_sha256)


def _cipher(call: Callable[..., _T], *args: object) -> _T:
    """A decryptor call; a failure (bad tag, missing final chunk, trailing data) is one error."""
    try:
        return call(*args)
    except (InvalidTag, ValueError) as exc:
        raise IntegrityError("file") from exc


def _decrypt(
    dec: Cobblestone256Decryptor, src: BinaryIO, plaintext_size: int, pipe: _Pipeline
) -> int:
    padded = padme_length(plaintext_size)
    released = 0  # plaintext (with padding) produced so far
    blob_size = len(MAGIC)

    def take(out: memoryview) -> memoryview:
        """The part of a decrypted block that is plaintext, after checking the padding."""
        nonlocal released
        end = released + len(out)
        if end > padded:
            raise IntegrityError("file")
        keep = max(0, min(len(out), plaintext_size - released))
        # Padding MUST be zero, so one plaintext has one blob length and nothing hides there.
        if keep < len(out) and bytes(out[keep:]).strip(b"\0"):
            raise IntegrityError("file")
        released = end
        return out[:keep]

    while True:
        inview, outview = pipe.slot()
        n = _readinto(src, inview)
        if n == 0:
            pipe.submit((_EMPTY, _EMPTY))
            break
        blob_size += n
        plain = take(outview[: _cipher(dec.update_into, inview[:n], outview)])
        pipe.submit((inview[:n], plain))
    final = memoryview(_cipher(dec.finalize))
    pipe.slot()
    pipe.submit((_EMPTY, take(final)))
    if released != padded:
        raise IntegrityError("file")
    return blob_size


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
    blob_verified_by_caller: bool = False,
) -> StreamResult:
    """Decrypt to a temporary file beside dest; rename only after the stream finalised and the
    plaintext (and, when given, blob) SHA-256 match. On any failure no file is left behind.

    `blob_verified_by_caller` skips hashing the blob again when the caller already checked
    its SHA-256 (while downloading it); it cannot be combined with `expected_blob_sha256`."""
    if blob_verified_by_caller and expected_blob_sha256 is not None:
        raise ValueError("either check the blob hash here or have checked it already")
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
                hash_blob=not blob_verified_by_caller,
            )
            if result.plaintext_sha256 != expected_sha256 or (
                expected_blob_sha256 is not None and result.blob_sha256 != expected_blob_sha256
            ):
                raise IntegrityError("file")
            # Once, at the end: the rename must never publish a file the disk does not hold.
            # (Starting write-back early with sync_file_range was measured and did not help.)
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
