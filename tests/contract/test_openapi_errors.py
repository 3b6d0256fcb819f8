"""/openapi.json against the error table: each operation documents exactly the problem statuses
the table gives it, and no domain error a route can reach is left undocumented.

What a route can reach is read from the code itself: a walk over the source of the endpoint and
its dependencies, following every vault function they name, collecting the domain error classes
raised or built on the way. Errors reached only through objects chosen at run time (the blob
store) are invisible to the walk; vault.api.openapi.ROUTE_ERRORS names those by hand.
"""

from __future__ import annotations

import ast
import builtins
import inspect
import textwrap
import types
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.dependencies.models import Dependant
from fastapi.testclient import TestClient

from vault import errors
from vault.api import openapi, problems
from vault.api.problems import PROBLEM_JSON, ProblemDetails, ValidationProblemDetails


def _resolve(node: ast.expr, scope: dict[str, Any]) -> Any:
    if isinstance(node, ast.Name):
        return scope.get(node.id, getattr(builtins, node.id, None))
    if isinstance(node, ast.Attribute):
        base = _resolve(node.value, scope)
        if isinstance(base, types.ModuleType | type):
            return getattr(base, node.attr, None)
    return None


def reachable_errors(
    fn: Callable[..., Any], seen: set[Any] | None = None
) -> set[type[errors.VaultError]]:
    """Domain error classes `fn` raises or builds, directly or through vault functions it
    names (called, or passed on, as to run_in_threadpool)."""
    seen = set() if seen is None else seen
    fn = inspect.unwrap(fn)
    if fn in seen or not getattr(fn, "__module__", "").startswith("vault."):
        return set()
    seen.add(fn)
    tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    scope = dict(fn.__globals__)
    if fn.__closure__:
        cells = (cell.cell_contents for cell in fn.__closure__)
        scope.update(zip(fn.__code__.co_freevars, cells, strict=True))
    found: set[type[errors.VaultError]] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call | ast.Raise) and (
            target := node.func if isinstance(node, ast.Call) else node.exc
        ):
            obj = _resolve(target, scope)
            if isinstance(obj, type) and issubclass(obj, errors.VaultError):
                found.add(obj)
        elif isinstance(node, ast.Name | ast.Attribute):
            obj = _resolve(node, scope)
            if isinstance(obj, types.FunctionType):
                found |= reachable_errors(obj, seen)
    return found


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    if dependant.call is not None:
        yield dependant.call
    for sub in dependant.dependencies:
        yield from _calls(sub)


@pytest.fixture
def document(app) -> dict[str, Any]:
    with TestClient(app) as client:
        response = client.get("/openapi.json")
    assert response.status_code == 200
    return response.json()


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield openapi.operation_key(method, path), operation


def _documented_errors(operation: dict[str, Any]) -> set[int]:
    return {int(code) for code in operation["responses"] if int(code) >= 400}


def test_every_route_has_an_error_entry_and_no_entry_is_stale(app):
    routes = set(openapi.api_routes(app))
    assert routes - set(openapi.ROUTE_ERRORS) == set(), "routes without a ROUTE_ERRORS entry"
    assert set(openapi.ROUTE_ERRORS) - routes == set(), "entries for routes that do not exist"


def test_documented_error_statuses_are_exactly_what_the_table_gives(document):
    operations = dict(_operations(document))
    assert len(operations) == len(openapi.ROUTE_ERRORS)
    for key, operation in operations.items():
        expected = openapi.operation_statuses(key, operation)
        assert _documented_errors(operation) == expected, key
        # The shared ones, spelled out, so a change to the derivation shows here too.
        assert {500, 503} <= expected, key
        assert (401 in expected) == bool(operation.get("security")) or key in {
            "POST /v1/accounts/activate",
            "POST /v1/auth/login",
            "POST /v1/accounts/recovery/begin",
        }, key


def test_every_reachable_domain_error_is_documented(app, document):
    operations = dict(_operations(document))
    undocumented = {}
    for key, route in openapi.api_routes(app).items():
        reached: set[type[errors.VaultError]] = set()
        for call in _calls(route.dependant):
            reached |= reachable_errors(call)
        assert reached or key in {"POST /v1/accounts/prelogin", "GET /v1/log/key"}, key
        missing = {
            cls.__name__: problems.status_of(cls)
            for cls in reached
            if problems.status_of(cls) not in _documented_errors(operations[key])
        }
        if missing:
            undocumented[key] = missing
    assert undocumented == {}


def test_the_walk_sees_errors_raised_in_services(app):
    # Guard for the test above: the walk must find errors raised two calls deep, or a route
    # could pass by reaching nothing.
    routes = openapi.api_routes(app)
    upload = routes["POST /v1/cases/{case_id}/uploads"]
    reached = set().union(*(reachable_errors(call) for call in _calls(upload.dependant)))
    names = {cls.__name__ for cls in reached}
    assert {"QuotaExceeded", "VersionConflict", "CaseNotFound", "NotAuthenticated"} <= names


def test_problem_responses_are_problem_json_with_the_real_schema(document):
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert schemas["ProblemDetails"]["required"] == ["type", "title", "status", "code"]
    for key, operation in _operations(document):
        for code, response in operation["responses"].items():
            if int(code) < 400:
                continue
            (content_type,) = response["content"]
            assert content_type == PROBLEM_JSON, (key, code)
            ref = response["content"][PROBLEM_JSON]["schema"]["$ref"]
            model = "ValidationProblemDetails" if code == "422" else "ProblemDetails"
            assert ref == f"#/components/schemas/{model}", (key, code)
        if "429" in operation["responses"]:
            assert operation["responses"]["429"]["headers"]["Retry-After"]["required"], key


def test_blob_download_documents_octets_and_ranges(document):
    blob = document["paths"]["/v1/cases/{case_id}/files/{file_id}/versions/{version}/blob"]
    responses = blob["get"]["responses"]
    for code in ("200", "206"):
        assert list(responses[code]["content"]) == ["application/octet-stream"], code
    assert "Content-Range" in responses["206"]["headers"]
    assert "416" in responses and "Content-Range" in responses["416"]["headers"]


def test_the_model_matches_the_bodies_problem_builds():
    plain = problems.problem(404, "not_found", "Not found").body
    assert set(ProblemDetails.model_validate_json(plain).model_dump(exclude_none=True)) == {
        "type", "title", "status", "code",
    }
    conflict = problems.problem(409, "version_conflict", "Conflict", "next is 3", expected=3)
    parsed = ProblemDetails.model_validate_json(conflict.body)
    assert (parsed.detail, parsed.expected) == ("next is 3", 3)
    with pytest.raises(ValueError):
        # A 422 without its list of failed checks is not what the server sends.
        ValidationProblemDetails.model_validate_json(plain)


def test_real_error_bodies_validate(client, make_user):
    user = make_user("alice")
    unauthenticated = client.get("/v1/me")
    invalid = client.get("/v1/log/proof/inclusion", headers=user.headers,
                         params={"index": -1, "size": "x"})
    missing = client.get("/v1/users/nobody-here/identity", headers=user.headers)
    for response, status in ((unauthenticated, 401), (invalid, 422), (missing, 404)):
        assert response.status_code == status
        assert response.headers["content-type"] == PROBLEM_JSON
        model = ValidationProblemDetails if status == 422 else ProblemDetails
        assert model.model_validate_json(response.content).status == status
    assert unauthenticated.headers["www-authenticate"] == "Bearer"
