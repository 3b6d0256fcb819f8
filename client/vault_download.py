"""Download plumbing: decrypt a blob while it is still arriving.

The blob is fetched into the transfer folder (so an interrupted download resumes with Range)
and, at the same time, decrypted from that file by another thread into a temporary output.
`GrowingBlob` is the decryptor's view of the transfer file: it hands out only bytes already
written, waits for more, and reports the end of the file only once the whole blob has been
received *and* its SHA-256 matched the signed manifest. So the decrypted file can be renamed
into place only after the blob was verified, exactly as when the two steps ran one after the
other; a failed or interrupted fetch makes the decryptor fail and leaves no output behind.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

_T = TypeVar("_T")


class FetchAborted(Exception):
    """The fetch feeding a GrowingBlob stopped before the blob was complete and verified."""


class DecryptorStopped(Exception):
    """The decryptor failed, so the rest of the blob is not worth fetching."""


class GrowingBlob:
    """A read-only file over a blob that another thread is still writing.

    The writer calls `grew(size)` after bytes up to `size` are written and flushed to the
    OS, then `finish()` once the blob is whole and verified, or `fail()` if it never will be.
    The reader (`readinto`) blocks until there is something to read, returns 0 only after
    `finish()`, and raises FetchAborted after `fail()`.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._fd = os.open(path, os.O_RDONLY)
        self._cond = threading.Condition()
        self._available = 0
        self._pos = 0
        self._finished = False
        self._failed = False
        self.reader_failed = False

    # ------------------------------------------------------------ writer side

    def grew(self, size: int) -> None:
        if self.reader_failed:
            raise DecryptorStopped()
        with self._cond:
            if size > self._available:
                self._available = size
                self._cond.notify_all()

    def finish(self) -> None:
        with self._cond:
            self._finished = True
            self._cond.notify_all()

    def fail(self) -> None:
        with self._cond:
            self._failed = True
            self._cond.notify_all()

    # ------------------------------------------------------------ reader side

    def _wait(self) -> int:
        """Bytes readable at the current position (0 means the verified end)."""
        with self._cond:
            while True:
                if self._failed:
                    raise FetchAborted()
                if self._available > self._pos:
                    return self._available - self._pos
                if self._finished:
                    return 0
                self._cond.wait()

    def readinto(self, view: memoryview | bytearray) -> int:
        ready = self._wait()
        if ready == 0:
            return 0
        target = memoryview(view)[: min(len(view), ready)]
        n = os.preadv(self._fd, [target], self._pos)
        if n <= 0:
            # The writer announced bytes the file does not hold: never a silent short blob.
            raise FetchAborted()
        self._pos += n
        return n

    def read(self, size: int) -> bytes:
        buf = bytearray(size)
        got = 0
        while got < size:
            n = self.readinto(memoryview(buf)[got:])
            if n == 0:
                break
            got += n
        return bytes(buf[:got])

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def fetch_while_decrypting(
    blob_path: Path,
    fetch: Callable[[GrowingBlob], _T],
    decrypt: Callable[[GrowingBlob], object],
) -> _T:
    """Run `fetch(blob)` on this thread and `decrypt(blob)` on another, over one GrowingBlob.

    `fetch` must call blob.grew() as bytes land and return only after the blob is whole and
    verified (raise otherwise); then the decryptor sees the end of the file. Returns what
    `fetch` returned once both are done. A failed decryptor stops the fetch at its next
    grew() and its error is raised; otherwise the fetch's error comes first.
    """
    blob_path.touch(mode=0o600, exist_ok=True)
    blob = GrowingBlob(blob_path)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            decrypt(blob)
        except BaseException as exc:  # re-raised on the caller's thread
            failure.append(exc)
            blob.reader_failed = True

    worker = threading.Thread(target=run, name="cv-decrypt", daemon=True)
    worker.start()
    try:
        try:
            result = fetch(blob)
        except BaseException as exc:
            blob.fail()
            worker.join()
            if failure and isinstance(exc, DecryptorStopped):
                raise failure[0] from None
            raise
        blob.finish()
    finally:
        worker.join()
        blob.close()
    if failure:
        raise failure[0]
    return result
