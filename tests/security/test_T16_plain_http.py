"""T16: a network attacker strips TLS, or a mistyped or planted URL points the client at
plain http on the network. The client refuses plain http to anything but loopback."""

from __future__ import annotations

import pytest

from client.api import Api, ApiError, check_server_url
from client.vault import Vault

REFUSED = [
    "http://vault.example.org",
    "http://10.0.0.5:8000",
    "http://192.168.1.20",
    "http://127.0.0.1.evil.example",
    "http://localhost.evil.example",
    "http://[2001:db8::1]:8000",
    "ftp://vault.example.org",
    "vault.example.org",
    "file:///etc/passwd",
]
ALLOWED = [
    "https://vault.example.org",
    "http://127.0.0.1:8000",
    "http://localhost:8000",
    "http://[::1]:8000",
]


@pytest.mark.parametrize("url", REFUSED)
def test_T16_client_refuses_plain_http_to_non_loopback(url, tmp_path):
    with pytest.raises(ApiError):
        check_server_url(url)
    with pytest.raises(ApiError):
        Api(url)
    with pytest.raises(ApiError):
        Vault(str(tmp_path / "home"), server=url)


@pytest.mark.parametrize("url", ALLOWED)
def test_T16_https_and_loopback_allowed(url):
    assert check_server_url(url) == url
