"""The one table that maps domain errors to RFC 9457 problem+json responses.

Domain errors carry a stable `code`; this module alone decides HTTP status codes. A subclass of
a listed error gets its category's status. Unexpected exceptions become a 500 that shows only a
request id; the details go to the server log under that id.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from vault import errors
from vault.protocol.encoding import EncodingError

log = logging.getLogger("vault.api")

PROBLEM_JSON = "application/problem+json"

STATUS_BY_ERROR: dict[type[errors.VaultError], int] = {
    errors.InvalidRequest: 400,
    errors.NotAuthenticated: 401,
    errors.InvalidCredentials: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.CaseOnHold: 409,  # a Conflict already; listed so the legal hold's status is plain
    errors.PayloadTooLarge: 413,
    errors.RateLimited: 429,
    errors.InsufficientStorage: 507,
    errors.ServiceUnavailable: 503,
    errors.StorageDamaged: 500,
}

_HTTP_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def status_of(error_class: type[errors.VaultError]) -> int:
    """The status every error of this class gets: its nearest listed ancestor's."""
    for cls in error_class.__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 400


def status_for(error: errors.VaultError) -> int:
    return status_of(type(error))


class FieldProblem(BaseModel):
    """One failed check of a 422: where it failed and why, never the offending input."""

    loc: list[str]
    msg: str


class ProblemDetails(BaseModel):
    """The body of every error response (RFC 9457), as `problem()` builds it. `code` is the
    stable, machine-readable name; the other members beyond RFC 9457's appear only with the
    errors that set them. Documented in /openapi.json as application/problem+json."""

    # Extra members may be added by new errors; a client must ignore those it does not know.
    model_config = ConfigDict(extra="allow")

    type: str = Field(pattern=r"^urn:casevault:problem:[a-z0-9_]+$")
    title: str
    status: int = Field(ge=400, le=599)
    code: str = Field(pattern=r"^[a-z0-9_]+$")
    # Omitted rather than null when there is nothing to add to the title.
    detail: str | SkipJsonSchema[None] = None
    errors: list[FieldProblem] | SkipJsonSchema[None] = Field(
        default=None, description="422 only: every failed check"
    )
    request_id: str | SkipJsonSchema[None] = Field(
        default=None, description="500 only: quote it to the operator"
    )
    expected: int | SkipJsonSchema[None] = Field(
        default=None, description="version_conflict: the next version of the file"
    )
    missing: list[int] | SkipJsonSchema[None] = Field(
        default=None, description="upload_incomplete: part numbers not yet received"
    )


class ValidationProblemDetails(ProblemDetails):
    """The 422 body: a problem whose `errors` lists the failed checks."""

    errors: list[FieldProblem]  # type: ignore[assignment]


def problem(
    status: int,
    code: str,
    title: str,
    detail: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"urn:casevault:problem:{code}",
        "title": title,
        "status": status,
        "code": code,
    }
    if detail:
        body["detail"] = detail
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def request_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", "-"))


async def _vault_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.VaultError)
    status = status_for(exc)
    headers: dict[str, str] = {}
    if isinstance(exc, errors.RateLimited | errors.ServiceUnavailable):
        headers["Retry-After"] = str(exc.retry_after)
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return problem(status, exc.code, exc.title, exc.detail, headers, **exc.extra)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # Only locations and messages: the input itself may hold an auth key or a code.
    problems = [
        {"loc": [str(part) for part in err.get("loc", ())], "msg": str(err.get("msg", ""))}
        for err in exc.errors()
    ]
    return problem(
        422, "invalid_request", "The request is not valid", "see errors", errors=problems
    )


async def _encoding_error(request: Request, exc: Exception) -> JSONResponse:
    # A record or field that fails a strict parser deep in a service is the client's fault,
    # whichever parser found it: the same 400 as a body that is not strict JSON.
    return await _vault_error(request, errors.InvalidEncoding(str(exc) or None))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    title = str(exc.detail) if isinstance(exc.detail, str) else "Request failed"
    return problem(exc.status_code, code, title, headers=dict(exc.headers or {}))


# Seconds a client should wait when the database is unreachable (a restart takes a few).
DATABASE_RETRY_AFTER = 5


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    # Lost or refused database connections are an outage, not a bug: a 503 the client may
    # retry, with no detail about the database, logged once without a traceback.
    log.warning("database unavailable request_id=%s: %s", request_id(request), type(exc).__name__)
    return problem(
        503,
        errors.ServiceUnavailable.code,
        errors.ServiceUnavailable.title,
        "the server cannot reach its database; try again shortly",
        headers={"Retry-After": str(DATABASE_RETRY_AFTER)},
    )


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    # Drivers report a dropped connection under several classes (SQLite: ProgrammingError on a
    # closed handle); SQLAlchemy marks every one it recognises as a disconnect. Anything else
    # from the database is a bug.
    assert isinstance(exc, DBAPIError)
    if exc.connection_invalidated:
        return await _database_unavailable(request, exc)
    return await _unexpected(request, exc)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    rid = request_id(request)
    log.error("unhandled error request_id=%s", rid, exc_info=exc)
    return problem(
        500,
        "internal_error",
        "Internal server error",
        f"quote request id {rid} to the operator",
        # Built outside the request-id middleware (Starlette's error layer), so set it here.
        headers={"X-Request-ID": rid},
        request_id=rid,
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(errors.VaultError, _vault_error)
    app.add_exception_handler(EncodingError, _encoding_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(OperationalError, _database_unavailable)
    app.add_exception_handler(InterfaceError, _database_unavailable)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(Exception, _unexpected)
