"""HTTP transport to a CaseVault server: problem+json -> client exceptions, streaming transfers.

The server is not trusted with content, but the transport still refuses plain http to anything
other than a loopback address, so a bearer token never crosses a network in clear.
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
# Transfers may sit on a slow line; a long read timeout, the same connect timeout.
TRANSFER_TIMEOUT = httpx.Timeout(300.0, connect=10.0)


class ApiError(Exception):
    """The server answered with an error. `code` is the stable slug of its problem+json."""

    message = "the server refused the request"

    def __init__(
        self,
        detail: str | None = None,
        *,
        code: str = "error",
        status: int = 0,
        problem: dict[str, Any] | None = None,
    ) -> None:
        self.detail = detail or self.message
        self.code = code
        self.status = status
        self.problem = problem or {}
        super().__init__(self.detail)


class InvalidRequest(ApiError):
    message = "the server rejected the request as invalid"


class NotAuthenticated(ApiError):
    message = "not logged in or the session expired; run `casevault login`"


class InvalidCredentials(ApiError):
    message = "wrong username, passphrase or code"


class Forbidden(ApiError):
    message = "you are not allowed to do that"


class InviteRequired(Forbidden):
    message = "registration needs a valid invite code"


class NotFound(ApiError):
    message = "not found (or you are not a member of that case)"


class Conflict(ApiError):
    message = "conflict with the current state on the server; try again"


class UsernameTaken(Conflict):
    message = "that username is taken"


class PayloadTooLarge(ApiError):
    message = "the server refused the size of the upload"


class RateLimited(ApiError):
    message = "too many attempts; wait and try again"

    @property
    def retry_after(self) -> int | None:
        value = self.problem.get("retry_after")
        return value if isinstance(value, int) else None


class ServerError(ApiError):
    message = "the server failed; quote the request id to the operator"


class BlobDamaged(ServerError):
    message = "the server's stored copy of the file is damaged or missing"


class Unreachable(ApiError):
    message = "the server is unreachable"


class InsecureTransport(ApiError):
    message = "refusing plain http to a non-loopback address; use https"


# The one table: problem `code` -> exception class. Unknown codes fall back by status.
ERRORS_BY_CODE: dict[str, type[ApiError]] = {
    "invalid_request": InvalidRequest,
    "weak_kdf_parameters": InvalidRequest,
    "invalid_identity_record": InvalidRequest,
    "not_authenticated": NotAuthenticated,
    "invalid_credentials": InvalidCredentials,
    "forbidden": Forbidden,
    "invite_required": InviteRequired,
    "not_found": NotFound,
    "conflict": Conflict,
    "username_taken": UsernameTaken,
    "payload_too_large": PayloadTooLarge,
    "rate_limited": RateLimited,
    "unavailable": ServerError,
    "blob_damaged": BlobDamaged,
    "internal_error": ServerError,
}
_ERRORS_BY_STATUS: dict[int, type[ApiError]] = {
    400: InvalidRequest,
    401: NotAuthenticated,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    412: Conflict,
    413: PayloadTooLarge,
    422: InvalidRequest,
    429: RateLimited,
}


def error_from_response(response: httpx.Response) -> ApiError:
    problem: dict[str, Any] = {}
    try:
        body = response.json()
        if isinstance(body, dict):
            problem = body
    except ValueError:
        pass
    code = problem.get("code") if isinstance(problem.get("code"), str) else ""
    cls = ERRORS_BY_CODE.get(code) or _ERRORS_BY_STATUS.get(response.status_code)
    if cls is None:
        cls = ServerError if response.status_code >= 500 else ApiError
    if "Retry-After" in response.headers and "retry_after" not in problem:
        with contextlib.suppress(ValueError):
            problem["retry_after"] = int(response.headers["Retry-After"])
    detail = problem.get("detail") if isinstance(problem.get("detail"), str) else None
    if cls is ServerError and isinstance(problem.get("request_id"), str):
        detail = f"the server failed (request id {problem['request_id']})"
    # Generic classes keep their own message: a lawyer gets the plain sentence, not the slug.
    if cls in (NotAuthenticated, InvalidCredentials, NotFound, RateLimited, BlobDamaged):
        detail = None
    return cls(detail, code=code or f"http_{response.status_code}", status=response.status_code,
               problem=problem)


def is_loopback_host(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_server_url(url: str) -> str:
    """Normalise a server URL; https anywhere, http only to loopback."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequest(f"not a server URL: {url!r}", code="invalid_server_url")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise InsecureTransport(code="insecure_transport")
    return url.strip().rstrip("/")


def seg(value: str | int) -> str:
    """Quote one path segment (usernames are user input)."""
    return quote(str(value), safe="")


class Api:
    """Thin JSON client over httpx. Methods return decoded JSON or raise an ApiError."""

    def __init__(
        self,
        server: str,
        token: str | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.server = check_server_url(server)
        self.token = token
        self._client = httpx.Client(
            base_url=self.server,
            timeout=DEFAULT_TIMEOUT,
            transport=transport,
            follow_redirects=False,
            headers={"User-Agent": "casevault-client/1"},
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = dict(extra or {})
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = self._headers(kwargs.pop("headers", None))
        try:
            response = self._client.request(method, path, headers=headers, **kwargs)
        except httpx.TimeoutException as exc:
            raise Unreachable("the server did not answer in time", code="timeout") from exc
        except httpx.TransportError as exc:
            raise Unreachable(f"the server at {self.server} is unreachable",
                              code="unreachable") from exc
        if response.status_code >= 400:
            raise error_from_response(response)
        return response

    def request(self, method: str, path: str, *, json: Any = None,
                params: dict[str, Any] | None = None) -> Any:
        response = self._send(method, path, json=json, params=params)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise ServerError("the server sent a reply that is not JSON",
                              code="bad_reply") from exc

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params or None)

    def list_page(self, path: str, *, limit: int, after: str | None = None) -> Any:
        """One page of a paged list (`?limit=N`, then `&after=` the previous page's `next`)."""
        params: dict[str, Any] = {"limit": limit}
        if after is not None:
            params["after"] = after
        return self.request("GET", path, params=params)

    def post(self, path: str, json: Any = None) -> Any:
        return self.request("POST", path, json=json)

    def put(self, path: str, json: Any = None) -> Any:
        return self.request("PUT", path, json=json)

    def delete(self, path: str, json: Any = None) -> Any:
        return self.request("DELETE", path, json=json)

    def put_bytes(self, path: str, data: bytes | Iterator[bytes], *,
                  headers: dict[str, str] | None = None, method: str = "PUT") -> Any:
        """Send one part as a raw body (a bytes object or an iterator streamed as it goes)."""
        hdrs = {"Content-Type": "application/octet-stream", **(headers or {})}
        response = self._send(method, path, content=data, headers=hdrs, timeout=TRANSFER_TIMEOUT)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            return None

    def download(
        self,
        path: str,
        sink: Callable[[bytes], None],
        *,
        offset: int = 0,
        expected_size: int | None = None,
        headers_out: dict[str, str] | None = None,
    ) -> int:
        """Stream a blob into `sink` from `offset` (Range); returns the bytes received.

        `headers_out`, when given, receives the response headers (the audit log index).

        A server that ignores Range (200 instead of 206) has the bytes before `offset` skipped
        here, so resume still works, just slower.
        """
        headers = self._headers({"Range": f"bytes={offset}-"} if offset else None)
        received = 0
        try:
            with self._client.stream("GET", path, headers=headers,
                                     timeout=TRANSFER_TIMEOUT) as response:
                if response.status_code == 416 and expected_size == offset:
                    return 0
                if response.status_code >= 400:
                    response.read()
                    raise error_from_response(response)
                if headers_out is not None:
                    headers_out.update({k.lower(): v for k, v in response.headers.items()})
                skip = offset if (offset and response.status_code == 200) else 0
                # Chunks as they arrive (not regrouped): whatever came before a broken connection
                # reaches the sink, so a resume starts exactly where the bytes stopped.
                for chunk in response.iter_bytes():
                    if skip:
                        cut = min(skip, len(chunk))
                        chunk = chunk[cut:]
                        skip -= cut
                        if not chunk:
                            continue
                    sink(chunk)
                    received += len(chunk)
        except httpx.TimeoutException as exc:
            raise Unreachable("the download timed out", code="timeout") from exc
        except httpx.TransportError as exc:
            raise Unreachable("the connection broke during the download",
                              code="unreachable") from exc
        return received
