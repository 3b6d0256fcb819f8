"""/openapi.json as the server really answers: every operation's problem+json responses and its
true success content type.

FastAPI documents what the route signatures show: 2xx JSON and a 422 body the server never sends.
Error responses come from the one table in vault.api.problems, so this module adds them after
the schema is generated instead of on each route: the statuses every operation shares are
derived from what the operation is (authenticated, has parameters, has a JSON body), and the
rest from ROUTE_ERRORS, which names the domain errors each route can raise. The status of each
error class comes from `problems.status_of`, never from here.
tests/contract/test_openapi_errors.py fails when a route has no entry, when an entry names a
route that does not exist, and when a route can reach a domain error its entry does not cover.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, routing
from fastapi.openapi.utils import get_openapi

from vault import errors
from vault.api import problems
from vault.api.problems import PROBLEM_JSON, ProblemDetails, ValidationProblemDetails
from vault.services.case_access import CaseNotFound, InsufficientRole
from vault.services.cases import CaseExists, MembershipConflict
from vault.services.files import FileDeleted, FileNotFound
from vault.services.membership_head import StaleMembership
from vault.services.uploads import (
    FileTooLarge,
    PartTooLarge,
    QuotaExceeded,
    UploadIncomplete,
    UploadNotFound,
    VersionConflict,
)

# A route's own errors: domain error classes (their status comes from the error table), or a
# bare status for the few problems a route answers directly (a download's unsatisfiable range).
RouteError = type[errors.VaultError] | int

_CASE_READ: tuple[RouteError, ...] = (CaseNotFound, InsufficientRole)
# Every audit-log append ends with a lookup of the event's leaf; a missing leaf is a 404.
_LOGGED: tuple[RouteError, ...] = (errors.NotFound,)
_ATTEMPT_COUNTED: tuple[RouteError, ...] = (errors.RateLimited, errors.InvalidCredentials)

ROUTE_ERRORS: dict[str, tuple[RouteError, ...]] = {
    "POST /v1/accounts/prelogin": (),
    "POST /v1/accounts/register": (
        errors.InvalidRequest, errors.InvalidIdentityRecord, errors.WeakKdfParameters,
        errors.InviteRequired, errors.UsernameTaken, errors.Conflict, errors.RateLimited,
    ),
    "POST /v1/accounts/activate": (errors.InvalidRequest, *_ATTEMPT_COUNTED),
    "POST /v1/auth/login": (errors.InvalidRequest, *_ATTEMPT_COUNTED),
    "POST /v1/auth/logout": _LOGGED,
    "POST /v1/accounts/recovery/begin": (errors.InvalidRequest, *_ATTEMPT_COUNTED),
    "POST /v1/accounts/recovery/complete": (errors.InvalidRequest, errors.WeakKdfParameters),
    "POST /v1/cases": (errors.InvalidRequest, CaseExists),
    "GET /v1/cases": (),
    "GET /v1/cases/{case_id}": _CASE_READ,
    "GET /v1/cases/{case_id}/membership": _CASE_READ,
    "POST /v1/cases/{case_id}/membership": (
        *_CASE_READ, errors.InvalidRequest, MembershipConflict,
    ),
    "GET /v1/cases/{case_id}/grants": _CASE_READ,
    "POST /v1/cases/{case_id}/uploads": (
        *_CASE_READ, errors.InvalidRequest, FileDeleted, VersionConflict, PartTooLarge,
        FileTooLarge, QuotaExceeded,
    ),
    "GET /v1/cases/{case_id}/uploads/{upload_id}": (*_CASE_READ, UploadNotFound),
    "DELETE /v1/cases/{case_id}/uploads/{upload_id}": (*_CASE_READ, UploadNotFound),
    # The blob store's writer reports a full disk as InsufficientStorage (507); it is reached
    # through the store object, which the route receives at run time.
    "PUT /v1/cases/{case_id}/uploads/{upload_id}/parts/{part_number}": (
        *_CASE_READ, UploadNotFound, errors.InvalidRequest, errors.InsufficientStorage,
    ),
    "POST /v1/cases/{case_id}/uploads/{upload_id}/complete": (
        *_CASE_READ, UploadNotFound, errors.InvalidRequest, UploadIncomplete, VersionConflict,
        errors.StorageDamaged, StaleMembership,
    ),
    "GET /v1/cases/{case_id}/files": (*_CASE_READ, errors.InvalidRequest),
    "GET /v1/cases/{case_id}/files/{file_id}/versions/{version}/blob": (
        *_CASE_READ, FileNotFound, FileDeleted, errors.StorageDamaged, 416,
    ),
    "POST /v1/cases/{case_id}/files/{file_id}/tombstone": (
        *_CASE_READ, FileNotFound, FileDeleted, errors.InvalidRequest, StaleMembership,
        errors.CaseOnHold,
    ),
    "GET /v1/log/key": (),
    "GET /v1/log/checkpoint": (errors.InvalidRequest, errors.NotFound),
    "GET /v1/log/proof/inclusion": (errors.InvalidRequest, errors.NotFound),
    "GET /v1/log/proof/consistency": (errors.InvalidRequest, errors.NotFound),
    "GET /v1/log/entries": (errors.NotFound,),
    "GET /v1/log/range": (errors.InvalidRequest, errors.NotFound),
    "GET /v1/sessions": (),
    "DELETE /v1/sessions/{session_id}": (errors.NotFound,),
    "DELETE /v1/sessions": _LOGGED,
    "GET /v1/me": (),
    "GET /v1/users/{username}/identity": (errors.NotFound,),
}

# Any operation can meet a bug (500) or a database outage (503, with Retry-After).
ALWAYS = frozenset({500, 503})

_DESCRIPTIONS = {
    400: "The request is not valid (malformed field, bad encoding, invalid signed record)",
    401: "No valid session, or the credentials were refused",
    403: "The caller's role does not allow this",
    404: "No such resource, or not visible to the caller",
    409: "Conflicts with the current state",
    413: "The request body or declared size is too large",
    416: "The requested range is not satisfiable",
    422: "A parameter or body field failed validation",
    429: "Too many attempts; wait Retry-After seconds",
    500: "Server bug; quote request_id to the operator",
    503: "Temporarily unavailable; retry after Retry-After seconds",
    507: "Not enough storage (quota or disk)",
}

_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"schema": {"type": "string", "const": "Bearer"}}},
    416: {"Content-Range": {"schema": {"type": "string", "pattern": r"^bytes \*/\d+$"}}},
    429: {"Retry-After": {"required": True, "schema": {"type": "integer", "minimum": 1}}},
    503: {"Retry-After": {"required": True, "schema": {"type": "integer", "minimum": 1}}},
    500: {"X-Request-ID": {"schema": {"type": "string"}}},
}

# Routes whose success body is not JSON.
_BLOB = "GET /v1/cases/{case_id}/files/{file_id}/versions/{version}/blob"


def operation_key(method: str, path: str) -> str:
    return f"{method.upper()} {path}"


def api_routes(app: FastAPI) -> dict[str, Any]:
    """Every documented operation's route (as FastAPI resolves included routers), by key."""
    return {
        operation_key(method, route.path_format): route
        for route in routing.iter_route_contexts(app.routes)
        if isinstance(route.original_route, routing.APIRoute) and route.include_in_schema
        for method in route.methods
    }


def route_statuses(key: str) -> set[int]:
    """Statuses of the route's own errors, through the error table."""
    return {
        entry if isinstance(entry, int) else problems.status_of(entry)
        for entry in ROUTE_ERRORS.get(key, ())
    }


def operation_statuses(key: str, operation: dict[str, Any]) -> set[int]:
    """Every error status one generated operation can answer with."""
    statuses = set(ALWAYS) | route_statuses(key)
    if operation.get("security"):
        statuses.add(401)  # the bearer check runs before the route
    if operation.get("parameters") or "requestBody" in operation:
        statuses.add(422)
    if "requestBody" in operation:
        statuses.add(413)  # the body limit applies before validation
        statuses.add(400)  # invalid_encoding: a body that is not strict JSON
    return statuses


def _problem_response(status: int) -> dict[str, Any]:
    model = ValidationProblemDetails if status == 422 else ProblemDetails
    response: dict[str, Any] = {
        "description": _DESCRIPTIONS.get(status, "Request failed"),
        "content": {PROBLEM_JSON: {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}},
    }
    if status in _HEADERS:
        response["headers"] = _HEADERS[status]
    return response


def _model_schemas() -> dict[str, Any]:
    found: dict[str, Any] = {}
    for model in (ProblemDetails, ValidationProblemDetails):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        found.update(schema.pop("$defs", {}))
        found[model.__name__] = schema
    for schema in found.values():
        # Optional members are omitted, never null: drop pydantic's `default: null`.
        for prop in schema.get("properties", {}).values():
            if prop.get("default", 0) is None:
                del prop["default"]
    return found


def _blob_responses(responses: dict[str, Any]) -> None:
    octets = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
    headers = {
        "Accept-Ranges": {"schema": {"type": "string", "const": "bytes"}},
        "ETag": {"schema": {"type": "string"}},
        "Content-Length": {"schema": {"type": "integer", "minimum": 0}},
    }
    responses["200"] = {"description": "The whole encrypted blob", "content": octets,
                        "headers": headers}
    responses["206"] = {
        "description": "The requested byte range of the encrypted blob",
        "content": octets,
        "headers": {**headers, "Content-Range": {"schema": {"type": "string"}}},
    }


def build(app: FastAPI) -> dict[str, Any]:
    schema = get_openapi(
        title=app.title, version=app.version, openapi_version=app.openapi_version,
        description=app.description, routes=app.routes,
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    components.update(_model_schemas())
    for key in api_routes(app):
        method, path = key.split(" ", 1)
        operation = schema["paths"][path][method.lower()]
        responses = operation["responses"]
        responses.pop("422", None)
        for status in sorted(operation_statuses(key, operation)):
            responses[str(status)] = _problem_response(status)
        if key == _BLOB:
            _blob_responses(responses)
    return schema


def install(app: FastAPI) -> None:
    """Serve the completed document at /openapi.json (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
