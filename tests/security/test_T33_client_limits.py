"""T33: a hostile server attacks the client through the shape of its replies: a body without end,
JSON nested deeper than the parser's recursion, and bytes trickled so slowly that no
per-operation timeout fires. The server here is a real socket server on loopback that writes
raw HTTP/1.1 (no framework would send such replies); the client is the real `casevault` console
script, or the real client.api.Api, over real sockets.
"""

from __future__ import annotations

import os
import socket
import socketserver
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from attack_kit import PASSPHRASE

from client.api import Api
from client.errors import MalformedReply, ServerReplyTooLarge, ServerTooSlow
from client.transport import DEFAULT_REPLY_BYTES, MIB, Limits

BIN = Path(sys.executable).parent
HUGE = 400 * MIB
DEEP = 100_000

# Replies: each writes raw HTTP/1.1 to the socket and returns the body bytes it got out.
Reply = Callable[[socket.socket], int]


def _head(length: int | None = None) -> bytes:
    framing = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    return (f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{framing}\r\n\r\n").encode()


def endless_json(sock: socket.socket) -> int:
    """400 MiB of one JSON string, chunked, made lazily from one 64 KiB block."""
    block = b"A" * (64 * 1024)
    chunk = f"{len(block):x}\r\n".encode() + block + b"\r\n"
    sock.sendall(_head() + b'1\r\n"\r\n')
    sent = 0
    while sent < HUGE:
        sock.sendall(chunk)
        sent += len(block)
    return sent


def declared_huge(sock: socket.socket) -> int:
    """A Content-Length of 400 MiB, then bytes for as long as the client reads them."""
    sock.sendall(_head(HUGE) + b'"')
    block, sent = b"A" * (64 * 1024), 0
    while sent < HUGE:
        sock.sendall(block)
        sent += len(block)
    return sent


def deep_json(sock: socket.socket) -> int:
    body = b"[" * DEEP + b"]" * DEEP
    sock.sendall(_head(len(body)) + body)
    return len(body)


def trickled_body(sock: socket.socket) -> int:
    """Headers at once, then a body of 10,000 bytes at a byte every 0.5 s."""
    sock.sendall(_head(10_000))
    for _ in range(10_000):
        sock.sendall(b" ")
        time.sleep(0.5)
    return 10_000


def trickled_headers(sock: socket.socket) -> int:
    """A status line, then header bytes at one every 0.5 s (a header never ends)."""
    sock.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
    for _ in range(10_000):
        sock.sendall(b"a")
        time.sleep(0.5)
    return 0


class _Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        server: _HostileServer = self.server  # type: ignore[assignment]
        sock: socket.socket = self.request
        head = b""
        while b"\r\n\r\n" not in head:
            data = sock.recv(65536)
            if not data:
                return
            head += data
        head, _, body = head.partition(b"\r\n\r\n")
        server.requests.append(head.split(b"\r\n", 1)[0].decode())
        length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        while len(body) < length:  # the whole request, so closing never resets the reply
            data = sock.recv(65536)
            if not data:
                return
            body += data
        try:
            server.sent.append(server.reply(sock))
            sock.shutdown(socket.SHUT_WR)
            sock.settimeout(10)
            while sock.recv(65536):  # until the client has read the reply and closed
                pass
        except OSError:
            if len(server.sent) < len(server.requests):
                server.sent.append(-1)  # the client hung up mid-reply, as it should
        finally:
            server.done.set()


class _HostileServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, reply: Reply) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.reply = reply
        self.requests: list[str] = []
        self.sent: list[int] = []
        self.done = threading.Event()


@contextmanager
def hostile(reply: Reply) -> Iterator[_HostileServer]:
    server = _HostileServer(reply)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def url_of(server: _HostileServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def run_cli(tmp_path: Path, *args: str) -> tuple[int, str, float, int]:
    """The real console script; (exit code, stderr, seconds, peak RSS in KiB of that process)."""
    err = tmp_path / "stderr.txt"
    env = {**os.environ, "CASEVAULT_HOME": str(tmp_path / "home"),
           "CASEVAULT_PASSPHRASE": PASSPHRASE, "CASEVAULT_TEST_INSECURE_KDF": "1"}
    started = time.monotonic()
    with err.open("wb") as err_fh:
        proc = subprocess.Popen([str(BIN / "casevault"), *args], env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=err_fh)
        try:
            # wait4 gives the peak resident memory of this one child, not of every child.
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            proc.returncode = 0  # reaped by wait4; Popen must not wait for it again
    return os.waitstatus_to_exitcode(status), err.read_text(), time.monotonic() - started, \
        usage.ru_maxrss


def _cli_baseline_kib(tmp_path: Path) -> int:
    """Peak memory of the same command against a server that is not there."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code, _, _, rss = run_cli(tmp_path, "login", "alice", "--server", f"http://127.0.0.1:{port}",
                              "--totp", "123456")
    assert code == 1
    return rss


def test_T33_endless_reply_is_refused_at_its_bound(tmp_path):
    """Attack: 400 MiB in answer to `login`'s first request. The client stops reading at the
    route's bound (4 MiB), says so in one line, and its memory stays near its baseline."""
    baseline = _cli_baseline_kib(tmp_path)
    with hostile(endless_json) as server:
        code, stderr, seconds, rss = run_cli(
            tmp_path, "login", "alice", "--server", url_of(server), "--totp", "123456")
        assert server.done.wait(10)
    assert code == 1, stderr
    assert "larger than the client accepts" in stderr
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1
    assert seconds < 30
    # It read about its bound and hung up: the server never got near 400 MiB out (what is
    # in flight sits in the loopback socket buffers, a few MiB).
    assert server.sent == [-1]
    assert rss - baseline < 3 * DEFAULT_REPLY_BYTES // 1024, (baseline, rss)


def test_T33_declared_huge_reply_is_refused_before_reading(tmp_path):
    with hostile(declared_huge) as server, Api(url_of(server)) as api:
        tracemalloc.start()
        try:
            started = time.monotonic()
            with pytest.raises(ServerReplyTooLarge):
                api.prelogin("alice")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert time.monotonic() - started < 10
        assert server.done.wait(10)
    assert peak < 2 * MIB
    assert server.sent == [-1]


def test_T33_endless_reply_memory_in_process(tmp_path):
    """The same endless body through the Api class: the bytes kept never pass the bound."""
    with hostile(endless_json) as server, Api(url_of(server)) as api:
        tracemalloc.start()
        try:
            with pytest.raises(ServerReplyTooLarge):
                api.me()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert server.done.wait(10)
    assert peak < 2 * DEFAULT_REPLY_BYTES + MIB
    assert server.sent == [-1]


def test_T33_deep_json_is_refused_without_recursion(tmp_path):
    """Attack: 100,000 nested arrays, which made json's recursion fail (RecursionError)."""
    with hostile(deep_json) as server:
        code, stderr, seconds, _ = run_cli(
            tmp_path, "login", "alice", "--server", url_of(server), "--totp", "123456")
    assert code == 1, stderr
    assert "nested deeper than the client reads" in stderr
    assert "Traceback" not in stderr and "RecursionError" not in stderr
    assert len(stderr.strip().splitlines()) == 1
    assert seconds < 30


@pytest.mark.parametrize("reply", [trickled_body, trickled_headers],
                         ids=["body", "headers"])
def test_T33_trickle_hits_the_request_deadline(reply):
    """Attack: every byte arrives well inside httpx's 30 s read timeout, so only a deadline
    for the whole request ends it: headers or body, the request stops at its budget."""
    limits = Limits(request_seconds=2.0)
    with hostile(reply) as server, Api(url_of(server), limits=limits) as api:
        started = time.monotonic()
        with pytest.raises(ServerTooSlow):
            api.prelogin("alice")
        elapsed = time.monotonic() - started
    assert 1.5 < elapsed < 5, elapsed


def test_T33_trickled_download_hits_the_transfer_budget(tmp_path):
    """A blob transfer may take as long as its bytes need at the minimum rate, no longer: a
    download trickling below that rate stops once its allowance is spent."""
    limits = Limits(transfer_grace_seconds=2.0, min_transfer_rate=1024)
    got = bytearray()
    with hostile(trickled_body) as server, Api(url_of(server), limits=limits) as api:
        started = time.monotonic()
        with pytest.raises(ServerTooSlow):
            api.download("/blob", got.extend, expected_size=10_000)
        elapsed = time.monotonic() - started
    assert 1.5 < elapsed < 5, elapsed
    assert 0 < len(got) < 20


def test_T33_steady_transfer_is_not_cut_by_the_budget(tmp_path):
    """The allowance grows with the bytes moved: a download slower than the grace period as a
    whole, but above the minimum rate, completes."""
    payload = b"x" * 8000

    def steady(sock: socket.socket) -> int:
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 8000\r\n\r\n")
        for i in range(0, len(payload), 1000):  # 2,000 B/s, 4 s in all
            sock.sendall(payload[i:i + 1000])
            time.sleep(0.5)
        return len(payload)

    limits = Limits(transfer_grace_seconds=1.0, min_transfer_rate=1024)
    got = bytearray()
    with hostile(steady) as server, Api(url_of(server), limits=limits) as api:
        assert api.download("/blob", got.extend, expected_size=8000) == 8000
    assert bytes(got) == payload


def test_T33_malformed_shapes_are_one_error():
    """Numbers longer than Python converts, broken UTF-8, compressed bodies: MalformedReply."""
    bodies = {
        b"[" + b"9" * 5000 + b"]": {},
        b'{"a": "\xff"}': {},
        b'{"a": 1}': {"Content-Encoding": "gzip"},
    }
    for body, extra in bodies.items():
        def reply(sock: socket.socket, body=body, extra=extra) -> int:
            head = _head(len(body))[:-2] + b"".join(
                f"{k}: {v}\r\n".encode() for k, v in extra.items()) + b"\r\n"
            sock.sendall(head + body)
            return len(body)

        with hostile(reply) as server, Api(url_of(server)) as api, \
                pytest.raises(MalformedReply):
            api.me()
