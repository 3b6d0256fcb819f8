"""T29: exhausting the server before any authentication, through HTTP itself.

uvicorn's httptools protocol buffered headers without limit and waited for them, and for
bodies, forever: six connections sending 64 MiB of headers grew a server by about 440 MiB, and a
half-sent request held its connection for good. `serve` now bounds header size and count, the
time to receive headers and between pieces of a body, and open connections
(vault.http_bounds). Real `casevault-server serve` subprocesses; memory read from /proc.
"""

from __future__ import annotations

import socket
import threading
import time

import httpx
from serve_kit import serve

MIB = 1024 * 1024
ATTACK_BYTES = 64 * MIB
REQUEST_LINE = b"GET /v1/log/key HTTP/1.1\r\nHost: 127.0.0.1\r\n"


def _flood(server, lines: bytes, outcome: dict) -> None:
    """Send the request line, then `lines` again and again up to ATTACK_BYTES of headers."""
    sock = server.connect(timeout=10)
    sent = 0
    try:
        sock.sendall(REQUEST_LINE)
        while sent < ATTACK_BYTES:
            sock.sendall(lines)
            sent += len(lines)
    except OSError:
        pass  # the server closed the connection: what the defence does
    outcome["sent"] = sent
    try:
        outcome["answer"] = sock.recv(4096)
    except OSError:
        outcome["answer"] = b""  # reset before the answer could be read: still closed
    sock.close()


def test_T29_header_flood_keeps_memory_bounded(tmp_path, database_url):
    with serve(tmp_path, database_url) as server:
        time.sleep(0.3)  # let start-up settle before the baseline
        baseline = server.rss_kib()
        # Three connections with one ever-growing header, three with ever more small ones.
        floods = [b"X-Pad: " + b"a" * (64 * 1024) + b"\r\n"] * 3 + [
            b"".join(b"X-Pad-%d: a\r\n" % i for i in range(4096))
        ] * 3
        outcomes = [{} for _ in floods]
        threads = [
            threading.Thread(target=_flood, args=(server, lines, out), daemon=True)
            for lines, out in zip(floods, outcomes, strict=True)
        ]
        for thread in threads:
            thread.start()
        peak = baseline
        while any(thread.is_alive() for thread in threads):
            peak = max(peak, server.rss_kib())
            time.sleep(0.01)
        peak = max(peak, server.rss_kib())
        # The server still answers everyone else.
        assert httpx.get(f"{server.url}/v1/log/key", timeout=5).status_code == 200
    assert (peak - baseline) * 1024 < 50 * MIB, f"server grew by {(peak - baseline) // 1024} MiB"
    for outcome in outcomes:
        assert outcome["sent"] < 4 * MIB, "the server kept reading headers"
        answer = outcome["answer"]
        assert answer == b"" or answer.startswith(b"HTTP/1.1 431 "), answer[:80]
    assert any(o["answer"].startswith(b"HTTP/1.1 431 ") for o in outcomes)


SHORT = {
    "CASEVAULT_HEADER_TIMEOUT": "1",
    "CASEVAULT_BODY_TIMEOUT": "1",
    "CASEVAULT_MAX_CONNECTIONS": "8",
}


def _closed_within(sock: socket.socket, trickle: bytes = b"", every: float = 0.2) -> tuple:
    """Trickle `trickle` a byte at a time until the server answers or closes: (answer, seconds)."""
    start = time.monotonic()
    sock.settimeout(every)
    answer = b""
    for byte in [trickle[i:i + 1] for i in range(len(trickle))] + [b""] * 50:
        try:
            if byte:
                sock.sendall(byte)
            chunk = sock.recv(4096)
            answer += chunk
            if not chunk:
                break
        except TimeoutError:
            continue
        except OSError:
            break
    return answer, time.monotonic() - start


def test_T29_half_sent_requests_are_closed(tmp_path, database_url):
    with serve(tmp_path, database_url, env=SHORT) as server:
        # Headers sent a byte every 0.2 s: alive, but never done.
        slow = server.connect()
        slow.sendall(b"GET /v1/log/key HTTP/1.1\r\n")
        answer, seconds = _closed_within(slow, b"X-Slow: " + b"a" * 100)
        assert answer.startswith(b"HTTP/1.1 408 ") and seconds < 3, (answer[:60], seconds)

        # A connection that never says anything.
        idle = server.connect()
        answer, seconds = _closed_within(idle)
        assert answer == b"" and seconds < 3

        # A body that stops half-way.
        stalled = server.connect()
        stalled.sendall(
            b"POST /v1/accounts/prelogin HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"user"
        )
        answer, seconds = _closed_within(stalled)
        assert answer.startswith(b"HTTP/1.1 408 ") and seconds < 3, (answer[:60], seconds)

        # A slow body that keeps coming is not a stall: the limit is on progress, not on time.
        body = b'{"username": "alice"}'
        steady = server.connect()
        steady.sendall(
            b"POST /v1/accounts/prelogin HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
        )
        for piece in (body[:7], body[7:14], body[14:]):
            time.sleep(0.45)
            steady.sendall(piece)
        answer, _ = _closed_within(steady)
        assert answer.startswith(b"HTTP/1.1 200 "), answer[:60]


def test_T29_connection_cap(tmp_path, database_url):
    with serve(tmp_path, database_url, env={**SHORT, "CASEVAULT_HEADER_TIMEOUT": "5"}) as server:
        time.sleep(0.3)  # the start-up probe's connection is gone
        held = [server.connect() for _ in range(8)]
        for sock in held:
            sock.sendall(REQUEST_LINE + b"\r\n")
            assert sock.recv(4096).startswith(b"HTTP/1.1 200 ")
        extra = server.connect()
        answer, _ = _closed_within(extra)
        assert answer.startswith(b"HTTP/1.1 503 "), answer[:60]
        # A slot that frees up is served again.
        held.pop().close()
        time.sleep(0.3)
        assert httpx.get(f"{server.url}/v1/log/key", timeout=5).status_code == 200
        for sock in held:
            sock.close()
