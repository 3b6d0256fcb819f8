"""The CaseVault server's HTTP API as the client calls it: one method per endpoint (every URL the
client uses is written in this module), problem+json -> client exceptions in one function
(error_from_response, with the table in client.errors), streaming transfers.

The server is not trusted with content, but the transport still refuses plain http to anything
other than a loopback address, so a bearer token never crosses a network in clear.

Every reply is read under the bounds of client.transport: a size per route (named beside the
route's method below; DEFAULT_REPLY_BYTES otherwise), a JSON nesting depth, and a time budget
per request (fixed for JSON requests, growing with the bytes moved for blob transfers).
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from client.errors import (  # noqa: F401 - re-exported: callers catch them as client.api.X
    ERRORS_BY_CODE,
    PLAIN_MESSAGE,
    ApiError,
    BlobDamaged,
    Conflict,
    Forbidden,
    InsecureTransport,
    InsufficientStorage,
    InvalidCredentials,
    InvalidRequest,
    InviteRequired,
    MalformedReply,
    NotAuthenticated,
    NotFound,
    PayloadTooLarge,
    QuotaExceeded,
    RateLimited,
    ServerError,
    ServerReplyTooLarge,
    ServerTooSlow,
    SessionExpired,
    Unreachable,
    UsernameTaken,
    error_class,
)
from client.transport import (
    DEFAULT_REPLY_BYTES,
    ERROR_REPLY_BYTES,
    MIB,
    Budget,
    Limits,
    budget_scope,
    counted,
    install_deadlines,
    parse_reply,
    read_body,
    refuse_encoded,
    request_budget,
    stream_pieces,
    transfer_budget,
)
from vault.protocol.cursor import format_cursor

# Per socket operation; the whole request is bounded by client.transport's Budget.
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
# Transfers may sit on a slow line; a long read timeout, the same connect timeout.
TRANSFER_TIMEOUT = httpx.Timeout(300.0, connect=10.0)


def error_from_response(response: httpx.Response, *, with_session: bool = False,
                        body: bytes | None = None) -> ApiError:
    """The one translation of an error reply (problem+json) into a client exception.

    `with_session`: the request carried the saved session's token, so a 401 means that session
    expired or was ended (SessionExpired), not that the user never logged in. `body`: the
    reply's bytes as read under the bound (a response read whole is used as it is).
    """
    problem: dict[str, Any] = {}
    with contextlib.suppress(MalformedReply):
        parsed = parse_reply(response.content if body is None else body)
        if isinstance(parsed, dict):
            problem = parsed
    code = problem.get("code") if isinstance(problem.get("code"), str) else ""
    cls = error_class(code, response.status_code)
    if with_session and cls is NotAuthenticated:
        cls = SessionExpired
    if "Retry-After" in response.headers and "retry_after" not in problem:
        with contextlib.suppress(ValueError):
            problem["retry_after"] = int(response.headers["Retry-After"])
    detail = problem.get("detail") if isinstance(problem.get("detail"), str) else None
    if cls is ServerError and isinstance(problem.get("request_id"), str):
        detail = f"the server failed (request id {problem['request_id']})"
    if issubclass(cls, PLAIN_MESSAGE):
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


def field(reply: Any, key: str) -> Any:
    """`reply[key]` of a JSON object reply, None for anything else: the caller checks the type,
    because a server that sends something other than an object is not trusted either."""
    return reply.get(key) if isinstance(reply, dict) else None


# The audit log's read endpoints. client.auditlog takes one `get_json(path, params)` function
# (tests hand it a hostile transport) and names these paths in the evidence it saves.
LOG_KEY = "/v1/log/key"
LOG_CHECKPOINT = "/v1/log/checkpoint"
LOG_CONSISTENCY_PROOF = "/v1/log/proof/consistency"
LOG_INCLUSION_PROOF = "/v1/log/proof/inclusion"
LOG_ENTRIES = "/v1/log/entries"
# Reply bound of every log route: entries and ranges are pages of up to 1,000 leaves (about
# 2 MiB); the key, checkpoints and proofs are far smaller.
LOG_PREFIX = "/v1/log/"
LOG_REPLY_BYTES = 16 * MIB
LOG_RANGE = "/v1/log/range"


def case_path(case_id: str, rest: str = "") -> str:
    return f"/v1/cases/{seg(case_id)}{rest}"


def upload_path(case_id: str, upload_id: str, rest: str = "") -> str:
    return case_path(case_id, f"/uploads/{seg(upload_id)}{rest}")


def reply_bound(path: str) -> int:
    """The reply bound of a route called without one of its own (client.auditlog's reads)."""
    return LOG_REPLY_BYTES if path.startswith(LOG_PREFIX) else DEFAULT_REPLY_BYTES


class Api:
    """The server's HTTP API: one method per endpoint (every URL of the client is in this
    module), each returning the decoded reply or raising an ApiError subclass."""

    def __init__(
        self,
        server: str,
        token: str | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.server = check_server_url(server)
        self.token = token
        self.limits = limits or Limits()
        self._client = httpx.Client(
            base_url=self.server,
            timeout=DEFAULT_TIMEOUT,
            transport=transport,
            follow_redirects=False,
            # Identity only: the size bounds count the bytes the client keeps (refuse_encoded).
            headers={"User-Agent": "casevault-client/1", "Accept-Encoding": "identity"},
        )
        if transport is None:
            install_deadlines(self._client)

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

    def _send(self, method: str, path: str, *, reply_bytes: int, budget: Budget,
              **kwargs: Any) -> tuple[httpx.Response, bytes]:
        """One request under `budget`; the reply's body read up to `reply_bytes` (an error
        reply up to ERROR_REPLY_BYTES). Every request of the client goes through here or
        through `download`."""
        headers = self._headers(kwargs.pop("headers", None))
        try:
            with budget_scope(budget), \
                    self._client.stream(method, path, headers=headers, **kwargs) as response:
                limit = reply_bytes if response.status_code < 400 else ERROR_REPLY_BYTES
                body = read_body(response, limit, budget)
        except httpx.TimeoutException as exc:
            raise ServerTooSlow(code="timeout") from exc
        except httpx.TransportError as exc:
            raise Unreachable(f"the server at {self.server} is unreachable",
                              code="unreachable") from exc
        if response.status_code >= 400:
            raise error_from_response(response, with_session=self.token is not None, body=body)
        return response, body

    def request(self, method: str, path: str, *, json: Any = None,
                params: dict[str, Any] | None = None, reply_bytes: int | None = None) -> Any:
        response, body = self._send(method, path, json=json, params=params,
                                    reply_bytes=reply_bytes or reply_bound(path),
                                    budget=request_budget(self.limits))
        if response.status_code == 204 or not body:
            return None
        return parse_reply(body)

    def get(self, path: str, *, reply_bytes: int | None = None, **params: Any) -> Any:
        return self.request("GET", path, params=params or None, reply_bytes=reply_bytes)

    def list_page(self, path: str, *, limit: int, after: str | None = None,
                  reply_bytes: int | None = None) -> Any:
        """One page of a paged list (`?limit=N`, then `&after=` the previous page's `next`)."""
        params: dict[str, Any] = {"limit": limit}
        if after is not None:
            params["after"] = after
        return self.request("GET", path, params=params, reply_bytes=reply_bytes)

    def post(self, path: str, json: Any = None) -> Any:
        return self.request("POST", path, json=json)

    def put(self, path: str, json: Any = None) -> Any:
        return self.request("PUT", path, json=json)

    def delete(self, path: str, json: Any = None) -> Any:
        return self.request("DELETE", path, json=json)

    def put_bytes(self, path: str, data: bytes | Iterator[bytes], *,
                  headers: dict[str, str] | None = None, method: str = "PUT") -> Any:
        """Send one part as a raw body (a bytes object or an iterator streamed as it goes),
        under a transfer budget: the time allowed grows with the bytes sent."""
        hdrs = {"Content-Type": "application/octet-stream", **(headers or {})}
        if isinstance(data, bytes):
            hdrs.setdefault("Content-Length", str(len(data)))
        budget = transfer_budget(self.limits)
        _, body = self._send(method, path, content=counted(data, budget), headers=hdrs,
                             timeout=TRANSFER_TIMEOUT, reply_bytes=DEFAULT_REPLY_BYTES,
                             budget=budget)
        return parse_reply(body) if body else None

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

        Nothing is buffered: the sink writes to disk and bounds the length (client.files.download
        refuses a byte past the manifest's signed blob size). Time is a transfer budget.
        """
        headers = self._headers({"Range": f"bytes={offset}-"} if offset else None)
        received = 0
        budget = transfer_budget(self.limits)
        try:
            with budget_scope(budget), self._client.stream(
                    "GET", path, headers=headers, timeout=TRANSFER_TIMEOUT) as response:
                if response.status_code == 416 and expected_size == offset:
                    return 0
                if response.status_code >= 400:
                    body = read_body(response, ERROR_REPLY_BYTES, budget)
                    raise error_from_response(response, with_session=self.token is not None,
                                              body=body)
                refuse_encoded(response)
                if headers_out is not None:
                    headers_out.update({k.lower(): v for k, v in response.headers.items()})
                skip = offset if (offset and response.status_code == 200) else 0
                # Chunks as they arrive (not regrouped): whatever came before a broken connection
                # reaches the sink, so a resume starts exactly where the bytes stopped.
                for chunk in stream_pieces(response, budget):
                    if skip:
                        cut = min(skip, len(chunk))
                        chunk = chunk[cut:]
                        skip -= cut
                        if not chunk:
                            continue
                    sink(chunk)
                    received += len(chunk)
        except httpx.TimeoutException as exc:
            raise ServerTooSlow("the download stalled or became too slow; run the command "
                                "again to resume it", code="timeout") from exc
        except httpx.TransportError as exc:
            raise Unreachable("the connection broke during the download",
                              code="unreachable") from exc
        return received

    # ------------------------------------------------------------ accounts and sessions

    def register(self, body: dict[str, Any]) -> Any:
        return self.post("/v1/accounts/register", body)

    def activate(self, body: dict[str, Any]) -> Any:
        return self.post("/v1/accounts/activate", body)

    def prelogin(self, username: str) -> Any:
        return self.post("/v1/accounts/prelogin", {"username": username})

    def login(self, body: dict[str, Any]) -> Any:
        return self.post("/v1/auth/login", body)

    def logout(self) -> Any:
        return self.post("/v1/auth/logout")

    def me(self) -> Any:
        return self.get("/v1/me")

    def recovery_begin(self, body: dict[str, Any]) -> Any:
        return self.post("/v1/accounts/recovery/begin", body)

    def recovery_complete(self, body: dict[str, Any]) -> Any:
        return self.post("/v1/accounts/recovery/complete", body)

    def user_identity(self, username: str) -> Any:
        return self.get(f"/v1/users/{seg(username)}/identity")

    # ------------------------------------------------------------ the audit log, for scans

    def log_key(self) -> Any:
        """The log key and `first_v2`, where format-2 leaves (and revocation scans) begin."""
        return self.get(LOG_KEY)

    def log_range(self, start: int, end: int, size: int, *, frontier: bool) -> Any:
        """One page of the skeletons of leaves [start, end) under the checkpoint of `size`,
        with the frontier at `start` when asked (SPEC.md, "Audit leaf format 2", server 3)."""
        params: dict[str, Any] = {"from": start, "to": end, "size": size}
        if frontier:
            params["frontier"] = "true"
        return self.get(LOG_RANGE, **params)

    # ------------------------------------------------------------ cases

    # Each case carries its sealed name and our grant: a lawyer's thousand cases stay far below.
    CASES_REPLY_BYTES = 16 * MIB

    def list_cases(self) -> Any:
        return self.get("/v1/cases", reply_bytes=self.CASES_REPLY_BYTES)

    def create_case(self, body: dict[str, Any]) -> Any:
        return self.post("/v1/cases", body)

    # The whole signed membership log (about 1 KiB an entry) with the members' usernames.
    MEMBERSHIP_REPLY_BYTES = 32 * MIB

    def membership(self, case_id: str) -> Any:
        return self.get(case_path(case_id, "/membership"),
                        reply_bytes=self.MEMBERSHIP_REPLY_BYTES)

    def append_membership(self, case_id: str, body: dict[str, Any]) -> Any:
        return self.post(case_path(case_id, "/membership"), body)

    # Every sealed case key of every generation for us (about 2 KiB each, post-quantum).
    GRANTS_REPLY_BYTES = 32 * MIB

    def grants(self, case_id: str) -> Any:
        return self.get(case_path(case_id, "/grants"), reply_bytes=self.GRANTS_REPLY_BYTES)

    # ------------------------------------------------------------ files

    # A page of 1,000 versions (client.files.paging) is about 2 MiB; the rest is room for
    # long sealed notes in the metadata.
    FILES_PAGE_REPLY_BYTES = 64 * MIB

    def files_page(self, case_id: str, *, limit: int, after: tuple[str, int] | None) -> Any:
        """One page of the case's versions, after the (file_id, version) of the last page."""
        cursor = format_cursor(*after) if after is not None else None
        return self.list_page(case_path(case_id, "/files"), limit=limit, after=cursor,
                              reply_bytes=self.FILES_PAGE_REPLY_BYTES)

    def create_upload(self, case_id: str, body: dict[str, Any]) -> Any:
        return self.post(case_path(case_id, "/uploads"), body)

    def upload_status(self, case_id: str, upload_id: str) -> Any:
        return self.get(upload_path(case_id, upload_id))

    def upload_part(self, case_id: str, upload_id: str, number: int,
                    body: bytes | Iterator[bytes], *, sha256: str, length: int) -> Any:
        # An explicit length: the server checks it, and slices are not sent chunked.
        return self.put_bytes(upload_path(case_id, upload_id, f"/parts/{number}"), body,
                              headers={"X-Part-SHA256": sha256, "Content-Length": str(length)})

    def complete_upload(self, case_id: str, upload_id: str, body: dict[str, Any]) -> Any:
        return self.post(upload_path(case_id, upload_id, "/complete"), body)

    def abort_upload(self, case_id: str, upload_id: str) -> Any:
        return self.delete(upload_path(case_id, upload_id))

    def download_blob(self, case_id: str, file_id: str, version: int,
                      sink: Callable[[bytes], None], *, offset: int, expected_size: int,
                      headers_out: dict[str, str]) -> int:
        path = case_path(case_id, f"/files/{seg(file_id)}/versions/{int(version)}/blob")
        return self.download(path, sink, offset=offset, expected_size=expected_size,
                             headers_out=headers_out)

    def delete_file(self, case_id: str, file_id: str, tombstone: dict[str, Any]) -> Any:
        return self.post(case_path(case_id, f"/files/{seg(file_id)}/tombstone"),
                         {"tombstone": tombstone})
