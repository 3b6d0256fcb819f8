"""uvicorn's httptools protocol with the bounds it lacks (THREAT_MODEL T29).

uvicorn's httptools protocol buffers a request's headers without limit and waits for them, and
for a body, forever: six connections sending 64 MiB of headers grew a server by about 440 MiB,
and a half-sent request held its connection for good. This subclass keeps httptools and uvloop
(2.5x the upload throughput of h11) and adds, per connection:

- header size (request line and headers, in bytes) and header count: 431 and close;
- a time limit to receive the complete headers, counted from the connection's first byte of a
  request (or from the connection itself): 408 and close;
- a time limit between two pieces of a request body while the server is waiting for it: 408
  (or a plain close once a response has started);
- a cap on open connections: the next one gets 503 and is closed.

What a connection can hold is therefore bounded by the header limit plus one socket read, and
by uvicorn's own body high-water mark, times the connection cap.
"""

from __future__ import annotations

import asyncio
import http
from dataclasses import dataclass

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


@dataclass(frozen=True)
class TransportLimits:
    max_header_bytes: int = 64 * 1024
    max_header_count: int = 100
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_connections: int = 512


class _Refused(Exception):
    """Raised inside a parser callback to stop parsing; httptools re-raises it as context."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol with header, time and connection bounds; see the module docstring."""

    limits = TransportLimits()

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # True from the end of one request's body to the end of the next one's headers.
        self._awaiting_headers = True
        self._header_bytes = 0
        self._header_count = 0
        self._header_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._body_progress = 0.0  # loop time of the last piece of body

    @classmethod
    def with_limits(cls, limits: TransportLimits) -> type[BoundedHttpToolsProtocol]:
        """A subclass bound to `limits` (uvicorn builds protocols from a class)."""
        return type(cls.__name__, (cls,), {"limits": limits})

    # Connection

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            self.logger.warning("Refused a connection: %d open.", len(self.connections) - 1)
            self._refuse(503, "Too many connections.")
            return
        # A connection that never sends a byte is closed too.
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        if self._awaiting_headers:
            # Every byte that arrives before the headers are complete is header (or request
            # line) bytes; counted before parsing, because httptools holds a header being
            # received in memory until its end.
            self._header_bytes += len(data)
            if self._header_timer is None:
                self._arm_header_timer()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _Refused):
                self.logger.warning("Refused a request: %s", exc.__context__.reason)
                self._refuse(exc.__context__.status, exc.__context__.reason)
                return
            self.logger.warning("Invalid HTTP request received.")
            self.send_400_response("Invalid HTTP request received.")
            return
        except httptools.HttpParserError:
            self.logger.warning("Invalid HTTP request received.")
            self.send_400_response("Invalid HTTP request received.")
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        if self._awaiting_headers and self._header_bytes > self.limits.max_header_bytes:
            self.logger.warning("Refused a request: header fields too large.")
            self._refuse(431, "Request header fields too large.")

    # Parser callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_count = 0

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.limits.max_header_count:
            raise _Refused(431, "Too many request header fields.")
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        # The exact size, for a request whose headers ended inside the read that crossed the
        # limit: it is refused before the application sees it.
        size = len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers)
        if size > self.limits.max_header_bytes:
            raise _Refused(431, "Request header fields too large.")
        self._awaiting_headers = False
        self._header_bytes = 0
        self._cancel_header_timer()
        super().on_headers_complete()
        self._arm_body_timer()

    def on_body(self, body: bytes) -> None:
        super().on_body(body)
        # Uploads arrive in many pieces: note the time, the running timer reads it.
        self._body_progress = self.loop.time()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._cancel_body_timer()
        self._awaiting_headers = True

    # Timers

    def _arm_header_timer(self) -> None:
        self._cancel_header_timer()
        self._header_timer = self.loop.call_later(
            self.limits.header_timeout, self._header_timeout_expired
        )

    def _header_timeout_expired(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or not self._awaiting_headers:
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # The answer to the request before is still being made: the client is not late.
            self._arm_header_timer()
            return
        if self._header_bytes == 0:
            self.transport.close()  # nothing was asked: nothing to answer
            return
        self.logger.warning("Closed a connection: request headers not received in time.")
        self._refuse(408, "Request headers not received in time.")

    def _arm_body_timer(self, delay: float | None = None) -> None:
        self._cancel_body_timer()
        if delay is None:
            self._body_progress = self.loop.time()
            delay = self.limits.body_timeout
        self._body_timer = self.loop.call_later(delay, self._body_timeout_expired)

    def _body_timeout_expired(self) -> None:
        self._body_timer = None
        cycle = self.cycle
        if self.transport.is_closing() or cycle is None or not cycle.more_body:
            return
        if cycle.response_complete:
            return
        # The server is the one waiting to read (flow control paused reading, or the client
        # waits for "100 Continue" that the application has not asked for yet): not a stall.
        if self.flow.read_paused or cycle.waiting_for_100_continue:
            self._arm_body_timer()
            return
        idle = self.loop.time() - self._body_progress
        if idle < self.limits.body_timeout:
            self._arm_body_timer(self.limits.body_timeout - idle)
            return
        self.logger.warning("Closed a connection: request body stalled.")
        if cycle.response_started:
            self.transport.close()
        else:
            self._refuse(408, "Request body not received in time.")

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _cancel_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _cancel_timers(self) -> None:
        self._cancel_header_timer()
        self._cancel_body_timer()

    # Answers written by the transport itself: the application never saw these requests.

    def _refuse(self, status: int, message: str) -> None:
        self._cancel_timers()
        cycle = self.cycle
        if cycle is not None and cycle.response_started and not cycle.response_complete:
            # An answer is on the wire: a status line now would corrupt it; closing is all.
            self.transport.close()
            return
        body = message.encode("ascii")
        content = [f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}\r\n".encode("ascii")]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        content.extend([
            b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
            b"connection: close\r\n",
            b"\r\n",
            body,
        ])
        self.transport.write(b"".join(content))
        self.transport.close()
