"""client.api: loopback-only plain http, and problem+json mapped to exceptions by `code`."""

from __future__ import annotations

import httpx
import pytest

from client import api


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000", "http://127.5.6.7", "http://[::1]:80",
                                 "http://localhost:8000", "https://vault.example"])
def test_allowed_server_urls(url: str) -> None:
    assert api.check_server_url(url + "/") == url


@pytest.mark.parametrize("url", ["http://192.0.2.1", "http://vault.example",
                                 "http://127.0.0.1.evil.example", "http://[::2]"])
def test_plain_http_to_non_loopback_is_refused(url: str) -> None:
    with pytest.raises(api.InsecureTransport):
        api.Api(url)


def _api_answering(status: int, body: dict, headers: dict | None = None) -> api.Api:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=body, headers=headers or {})

    return api.Api("http://127.0.0.1:1", transport=httpx.MockTransport(handler))


@pytest.mark.parametrize(("status", "code", "cls"), [
    (401, "invalid_credentials", api.InvalidCredentials),
    (404, "not_found", api.NotFound),
    (409, "username_taken", api.UsernameTaken),
    (403, "invite_required", api.InviteRequired),
    (400, "weak_kdf_parameters", api.InvalidRequest),
    (404, "some_new_code", api.NotFound),
    (500, "internal_error", api.ServerError),
    (500, "blob_damaged", api.BlobDamaged),
])
def test_problem_codes_map_to_exceptions(status: int, code: str, cls: type) -> None:
    with _api_answering(status, {"code": code, "detail": "x"}) as client, \
            pytest.raises(cls) as info:
        client.get("/v1/me")
    assert info.value.code == code and info.value.status == status


def test_rate_limit_carries_retry_after() -> None:
    with _api_answering(429, {"code": "rate_limited"}, {"Retry-After": "17"}) as client, \
            pytest.raises(api.RateLimited) as info:
        client.post("/v1/auth/login", {})
    assert info.value.retry_after == 17


def test_download_resumes_from_offset_even_without_range_support() -> None:
    data = bytes(range(256)) * 10

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=data)  # ignores Range on purpose

    got = bytearray()
    with api.Api("http://127.0.0.1:1", transport=httpx.MockTransport(handler)) as client:
        client.download("/blob", got.extend, offset=1000)
    assert bytes(got) == data[1000:]
