"""How much of a reply the client reads, and for how long: the bounds client.api applies to every
request (SPEC.md, "Client limits").

The server is not trusted, and a reply is read before anything in it can be verified, so the
reading itself is bounded:

- size: a reply body is read in pieces and given up at the route's bound, never buffered whole
  (a declared Content-Length above the bound is refused before the first byte); compressed
  replies are not asked for and are refused, so the bound counts the bytes that are kept;
- depth: JSON nesting is measured on the raw bytes before the parser, whose recursion a deep
  reply would exhaust, runs (`parse_reply`);
- time: httpx's timeouts bound one socket operation each, so a server that sends a byte every
  few seconds would never trip them. A `Budget` bounds the whole request instead: a fixed
  total for ordinary requests, and for blob transfers an allowance that grows with the bytes
  moved (a slow but steady line finishes, a stalled or trickling one does not). The budget is
  enforced on every socket read and write (`install_deadlines`), so a trickle of headers is
  caught as well as a trickle of body, and between body pieces for any other transport.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

from client.errors import MalformedReply, ServerReplyTooLarge, ServerTooSlow

MIB = 1024 * 1024

# JSON replies: a few MiB unless the route's method in client.api names a larger bound.
DEFAULT_REPLY_BYTES = 4 * MIB
# An error reply is a short problem+json document.
ERROR_REPLY_BYTES = 64 * 1024
# The deepest legitimate reply (a page of versions holding signed records) nests 5 levels.
MAX_REPLY_DEPTH = 32


@dataclass(frozen=True)
class Limits:
    """Time bounds of one Api (tests shorten them; the CLI uses the defaults)."""

    # Whole request, connect to last byte, for JSON requests.
    request_seconds: float = 120.0
    # Blob transfers (upload parts, downloads): this much time, plus 1 s per
    # `min_transfer_rate` bytes moved, so a line slower than that rate on average gives up.
    transfer_grace_seconds: float = 60.0
    min_transfer_rate: int = 8 * 1024


class Budget:
    """The time one request may still take: `seconds` from its start, plus `per_byte` seconds
    for every byte moved."""

    def __init__(self, seconds: float, per_byte: float = 0.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._end = clock() + seconds
        self._per_byte = per_byte

    def moved(self, n: int) -> None:
        self._end += n * self._per_byte

    def left(self) -> float:
        return self._end - self._clock()

    def check(self) -> None:
        if self.left() <= 0:
            raise ServerTooSlow(code="timeout")


def request_budget(limits: Limits) -> Budget:
    return Budget(limits.request_seconds)


def transfer_budget(limits: Limits) -> Budget:
    return Budget(limits.transfer_grace_seconds, 1.0 / limits.min_transfer_rate)


# ---------------------------------------------------------------- the deadline at the socket

_active = threading.local()


@contextlib.contextmanager
def budget_scope(budget: Budget) -> Iterator[Budget]:
    """Every socket operation of this thread inside the block is bounded by `budget`."""
    previous = getattr(_active, "budget", None)
    _active.budget = budget
    try:
        yield budget
    finally:
        _active.budget = previous


def _clip(timeout: float | None, timeout_exc: type[Exception]) -> float | None:
    budget: Budget | None = getattr(_active, "budget", None)
    if budget is None:
        return timeout
    left = budget.left()
    if left <= 0:
        raise timeout_exc("the request ran out of time")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read and write waits no longer than the request has left."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _clip(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _clip(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        return _DeadlineStream(self._inner.start_tls(
            ssl_context, server_hostname, _clip(timeout, httpcore.ConnectTimeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: Any = None) -> httpcore.NetworkStream:
        return _DeadlineStream(self._inner.connect_tcp(
            host, port, _clip(timeout, httpcore.ConnectTimeout), local_address, socket_options))

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Any = None) -> httpcore.NetworkStream:
        return _DeadlineStream(self._inner.connect_unix_socket(
            path, _clip(timeout, httpcore.ConnectTimeout), socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def install_deadlines(client: httpx.Client) -> bool:
    """Put the budget on the sockets of `client`'s own transports (the direct one and any proxy
    httpx set up from the environment). httpx offers no public hook for the network layer, so
    this reaches the connection pools it built; False if their layout is not the expected one,
    and then the budget is still checked between body pieces (a test pins that it applies)."""
    transports = [client._transport, *client._mounts.values()]  # noqa: SLF001
    pools = [getattr(t, "_pool", None) for t in transports if t is not None]
    if not pools or not all(isinstance(getattr(p, "_network_backend", None),
                                       httpcore.NetworkBackend) for p in pools):
        return False
    for pool in pools:
        pool._network_backend = _DeadlineBackend(pool._network_backend)  # noqa: SLF001
    return True


# ---------------------------------------------------------------- size


def read_body(response: httpx.Response, limit: int, budget: Budget) -> bytes:
    """The body of a streamed response, read in pieces; ServerReplyTooLarge once it passes
    `limit` (the rest is never read: closing the response drops the connection)."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ServerReplyTooLarge(code="reply_too_large")
    refuse_encoded(response)
    return b"".join(stream_pieces(response, budget, limit=limit))


def stream_pieces(response: httpx.Response, budget: Budget, *,
                  limit: int | None = None) -> Iterator[bytes]:
    """The body as it arrives, each piece credited to `budget` and checked against it;
    ServerReplyTooLarge past `limit` (None: the caller's sink bounds the length)."""
    try:
        # A response built in memory (a transport that answers without a network) is whole.
        whole = [response.content]
    except httpx.ResponseNotRead:
        whole = None
    size = 0
    for piece in whole if whole is not None else response.iter_raw():
        size += len(piece)
        if limit is not None and size > limit:
            raise ServerReplyTooLarge(code="reply_too_large")
        budget.moved(len(piece))
        budget.check()
        yield piece


def refuse_encoded(response: httpx.Response) -> None:
    """The client asks for identity encoding; a compressed reply would make the size bound
    count compressed bytes (a small gzip body inflates a thousandfold), so it is refused."""
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise MalformedReply("the server sent a compressed reply the client did not ask for",
                             code="malformed_reply")


def counted(body: bytes | Iterator[bytes], budget: Budget) -> Iterator[bytes]:
    """A request body that credits `budget` with each piece as httpx takes it."""
    pieces = [body] if isinstance(body, bytes | bytearray | memoryview) else body
    for piece in pieces:
        budget.moved(len(piece))
        yield piece


# ---------------------------------------------------------------- depth and parsing

# A JSON string from its opening quote; an unterminated one runs to the end, so every match
# attempt succeeds and the scan stays linear whatever the bytes are.
_STRING = re.compile(rb'"[^"\\]*(?:\\(?:.|\Z)[^"\\]*)*(?:"|\Z)', re.DOTALL)
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_ONE_KIND = bytes.maketrans(b"{}", b"[]")


def nesting_within(body: bytes, max_depth: int) -> bool:
    """Whether the JSON text `body` nests arrays and objects at most `max_depth` deep.

    Strings are cut out, the brackets that remain are kept (both kinds as one), and each round
    removes the innermost pairs: a text of depth d is empty after d rounds. Everything runs in
    C (regex, translate, replace), so a large page costs a few passes over its bytes.
    """
    skeleton = _STRING.sub(b"", body).translate(_ONE_KIND, delete=_NOT_BRACKET)
    for _ in range(max_depth):
        if not skeleton:
            return True
        shorter = skeleton.replace(b"[]", b"")
        if len(shorter) == len(skeleton):
            return False  # unbalanced: not JSON either
        skeleton = shorter
    return not skeleton


def parse_reply(body: bytes, max_depth: int = MAX_REPLY_DEPTH) -> Any:
    """A JSON reply, or MalformedReply (not JSON, nested too deeply, numbers too long)."""
    if not nesting_within(body, max_depth):
        raise MalformedReply("the server sent a reply nested deeper than the client reads",
                             code="malformed_reply")
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        # ValueError covers broken UTF-8 and integers of more digits than Python converts.
        raise MalformedReply(code="malformed_reply") from exc
