"""T28: a client that writes its own X-Forwarded-For.

uvicorn's defaults believe X-Forwarded-For from any loopback peer, so a client on the server's
machine (or behind a proxy that passes the header on) chose its own source address: a new one
per guess walked past the per-address login limit, and the audit log recorded whatever it wrote.
`serve` now ignores forwarded headers unless the operator names the proxies, takes only the
rightmost address no named proxy added, and records only a checked IP address.
Real `casevault-server serve` subprocesses, real HTTP, the real audit table.
"""

from __future__ import annotations

import httpx
from serve_kit import serve

from vault.cli import EXIT_USAGE, main

LIMIT = {"CASEVAULT_RATE_LIMIT_ADDRESS_ATTEMPTS": "3"}


def _login(http: httpx.Client, username: str, forwarded_for: str) -> int:
    body = {"username": username, "auth_key": "A" * 43, "totp": "000000"}
    return http.post(
        "/v1/auth/login", json=body, headers={"X-Forwarded-For": forwarded_for}
    ).status_code


def test_T28_forwarded_for_ignored_unless_a_proxy_is_named(tmp_path, database_url):
    with serve(tmp_path, database_url, env=LIMIT) as server, httpx.Client(
        base_url=server.url, timeout=10
    ) as http:
        # One guess per name, each claiming to come from another address.
        answers = [_login(http, f"lawyer{i}", f"203.0.113.{i}") for i in range(12)]
        sources = server.sources()
    assert answers == [401] * 3 + [429] * 9
    assert sources and set(sources) == {"127.0.0.1"}


def test_T28_named_proxy_is_believed_rightmost_hop_only(tmp_path, database_url):
    # A comma list and a repeated flag; the client's own prefix to the header must not count.
    with serve(
        tmp_path, database_url, "--trusted-proxy", "10.0.0.0/8,127.0.0.1",
        "--trusted-proxy", "::1", env=LIMIT,
    ) as server, httpx.Client(base_url=server.url, timeout=10) as http:
        # The proxy appends the address it saw; rotating it is what distinct clients look like.
        answers = [_login(http, f"lawyer{i}", f"203.0.113.{i}") for i in range(10)]
        # A client that writes its own header before the proxy appends its real address.
        spoofed = [
            _login(http, f"spoof{i}", f"198.51.100.{i}, 192.0.2.77, 10.1.2.3") for i in range(5)
        ]
        sources = server.sources()
    assert answers == [401] * 10
    assert [s for s in sources if s.startswith("203.0.113.")] == [
        f"203.0.113.{i}" for i in range(10)
    ]
    # 10.1.2.3 is a named proxy, so 192.0.2.77 is the client: its limit holds.
    assert spoofed == [401] * 3 + [429] * 2
    assert not any(s.startswith("198.51.100.") for s in sources)
    assert "192.0.2.77" in sources


def test_T28_garbage_forwarded_for_never_recorded(tmp_path, database_url):
    garbage = [
        "CVMARK-not-an-address",
        "<script>CVMARK</script>",
        "127.0.0.1 CVMARK",
        "CVMARK" * 40,
        "fe80::1%CVMARK",
        "[::1]:80CVMARK",
    ]
    with serve(tmp_path, database_url, "--trusted-proxy", "127.0.0.1") as server, httpx.Client(
        base_url=server.url, timeout=10
    ) as http:
        answers = [_login(http, f"lawyer{i}", value) for i, value in enumerate(garbage)]
        sources = server.sources()
        log = server.log.read_text()
    # Refused by credentials, never by a 500 (a 240-character source used to overflow a
    # PostgreSQL column).
    assert answers == [401] * len(garbage)
    assert len(sources) >= len(garbage)
    # "[::1]:80CVMARK" is read as the address ::1 with a port that does not parse.
    assert set(sources) <= {"unknown", "fe80::1", "::1", "127.0.0.1"}
    assert "unknown" in sources and "fe80::1" in sources
    assert "CVMARK" not in log  # the access log shows the checked address too


def test_T28_trusted_proxy_must_be_an_address(capsys):
    assert main(["serve", "--trusted-proxy", "*"]) == EXIT_USAGE
    assert "not an IP address or network" in capsys.readouterr().err
    assert main(["serve", "--trusted-proxy", "proxy.example"]) == EXIT_USAGE
