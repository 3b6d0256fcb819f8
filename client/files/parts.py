"""Upload plumbing: hash the parts while the blob is written, send parts while encrypting.

The blob is encrypted once into the transfer folder. `PartWriter` sits between the cipher and
that file and hashes each part as it passes, so no second pass over the blob is needed; each
finished part is handed to `PartSender`, which sends it over a few connections while the cipher
goes on (the server takes parts in any order and checks each part's SHA-256 and the whole blob's
against the signed manifest). A resume reads the parts back from disk and checks them against
the hashes kept in the resume state before sending them.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, BinaryIO

from client.errors import LocalCopyDamaged

# Two connections: one part is hashed and written by the server while the next one travels.
# Measured with bench/bench_transfer.py (256 MiB); more did not help on two cores.
SEND_CONNECTIONS = 2
# A part read just written goes out in slices: no part-sized buffer per connection, which kept
# the client's peak memory growing with the file (allocator fragmentation across threads).
SEND_SLICE = 1024 * 1024


def part_digests(read_part: Callable[[int], bytes], count: int) -> list[str]:
    """SHA-256 of every part read back from disk (resume state written by older clients)."""
    return [hashlib.sha256(read_part(n)).hexdigest() for n in range(count)]


class PartWriter:
    """A write-only file for encrypt_stream: writes through and hashes every `part_size` slice.

    `on_part(number, sha256_hex)` runs once a part is complete and flushed to the OS, so
    another file handle can read it back.
    """

    def __init__(self, out: BinaryIO, part_size: int,
                 on_part: Callable[[int, str], None] | None = None) -> None:
        self._out = out
        self._part_size = part_size
        self._on_part = on_part
        self._hash = hashlib.sha256()
        self._filled = 0
        self.digests: list[str] = []

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self._out.write(view)
        while len(view):
            take = min(len(view), self._part_size - self._filled)
            self._hash.update(view[:take])
            self._filled += take
            view = view[take:]
            if self._filled == self._part_size:
                self._finish_part()
        return len(data)

    def close_parts(self) -> list[str]:
        """Finish the last (short) part; returns every part's SHA-256 in order."""
        if self._filled:
            self._finish_part()
        self._out.flush()
        return self.digests

    def _finish_part(self) -> None:
        self.digests.append(self._hash.hexdigest())
        self._hash, self._filled = hashlib.sha256(), 0
        self._out.flush()
        if self._on_part is not None:
            self._on_part(len(self.digests) - 1, self.digests[-1])


class PartSender:
    """Sends parts of a blob file over SEND_CONNECTIONS threads; errors surface in `wait`.

    `send(number, body, sha256_hex, length)` does one request (body: bytes or slices). After
    the first failure no new part is started (the upload resumes later from the server's
    status), and `wait` re-raises it.
    """

    def __init__(self, blob_path: os.PathLike[str] | str, part_size: int, total: int,
                 send: Callable[[int, bytes | Iterator[bytes], str, int], None],
                 advance: Callable[[int], None]) -> None:
        self._fd = os.open(blob_path, os.O_RDONLY)
        self._part_size = part_size
        self._total = total
        self._send = send
        self._advance = advance
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(SEND_CONNECTIONS, thread_name_prefix="cv-put")
        self._futures: list[Future[None]] = []
        self._failed: BaseException | None = None

    def read_part(self, number: int) -> bytes:
        offset = number * self._part_size
        size = self._part_length(number)
        data = os.pread(self._fd, size, offset)
        if len(data) != size:
            raise OSError("the local copy of the encrypted file is shorter than announced")
        return data

    def submit(self, number: int, digest: str, *, verify: bool = False) -> None:
        """Queue part `number`. With `verify`, the bytes read back must hash to `digest`
        (a resume from disk), else LocalCopyDamaged; without, `digest` was computed as the
        bytes were written."""
        if self._failed is None:
            self._futures.append(self._pool.submit(self._one, number, digest, verify))

    def _one(self, number: int, digest: str, verify: bool) -> None:
        if self._failed is not None:
            return
        try:
            if verify:
                # A resume: the whole part is checked before a byte of it is sent.
                data: bytes | Iterator[bytes] = self.read_part(number)
                if hashlib.sha256(data).hexdigest() != digest:  # type: ignore[arg-type]
                    raise LocalCopyDamaged()
            else:
                data = self._slices(number)
            self._send(number, data, digest, self._part_length(number))
        except BaseException as exc:
            self._failed = self._failed or exc
            raise
        with self._lock:
            self._advance(self._part_length(number))

    def _part_length(self, number: int) -> int:
        return min(self._part_size, self._total - number * self._part_size)

    def _slices(self, number: int) -> Iterator[bytes]:
        offset, left = number * self._part_size, self._part_length(number)
        while left:
            data = os.pread(self._fd, min(SEND_SLICE, left), offset)
            if not data:
                raise OSError("the local copy of the encrypted file is shorter than announced")
            offset, left = offset + len(data), left - len(data)
            yield data

    def wait(self) -> None:
        """Wait for every part submitted; raise the first failure."""
        try:
            for future in self._futures:
                future.exception()
        finally:
            self._pool.shutdown(wait=True)
            os.close(self._fd)
        if self._failed is not None:
            raise self._failed

    def cancel(self) -> None:
        self._failed = self._failed or RuntimeError("cancelled")
        self._pool.shutdown(wait=True, cancel_futures=True)
        os.close(self._fd)
