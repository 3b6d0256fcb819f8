"""Every problem `code` the server can send has a client class, or a documented fallback.

The server's codes are read from the code itself: the `code` attribute of every subclass of
vault.errors.VaultError in every module of the server (services and storage define their own),
plus the codes its framework layer sends for routes and methods (vault.api.problems). A code
added on the server without a line in client.errors' ERRORS_BY_CODE or FALLBACK_CODES fails here.
"""

from __future__ import annotations

import importlib
import pkgutil

import httpx
import pytest

import vault
from client import errors as client_errors
from client.api import error_from_response
from vault import errors as server_errors
from vault.api import problems


def _import_every_server_module() -> None:
    for info in pkgutil.walk_packages(vault.__path__, "vault."):
        if ".migrations" in info.name:
            continue  # Alembic scripts run inside Alembic's context, not on import
        importlib.import_module(info.name)


def _subclasses(cls: type) -> set[type]:
    out: set[type] = set()
    for sub in cls.__subclasses__():
        out |= {sub} | _subclasses(sub)
    return out


def _server_codes() -> dict[str, type]:
    _import_every_server_module()
    codes: dict[str, type] = {}
    for cls in {server_errors.VaultError} | _subclasses(server_errors.VaultError):
        code = getattr(cls, "code", None)
        if isinstance(code, str) and cls is not server_errors.VaultError:
            codes.setdefault(code, cls)
    return codes


def _framework_codes() -> set[str]:
    table = getattr(problems, "_HTTP_CODES", {})
    return set(table.values()) | {"internal_error", "http_error"}


def test_the_server_defines_codes_to_check():
    # A guard for the test itself: the walk found the server's errors, not an empty set.
    codes = _server_codes()
    assert {"storage_full", "quota_exceeded", "not_found", "version_conflict"} <= set(codes)
    assert len(codes) >= 25


def test_every_server_code_has_a_client_class_or_documented_fallback():
    known = set(client_errors.ERRORS_BY_CODE) | set(client_errors.FALLBACK_CODES)
    missing = sorted((set(_server_codes()) | _framework_codes()) - known)
    assert not missing, f"server codes with no client class or documented fallback: {missing}"


def test_fallbacks_are_only_for_codes_the_client_never_provokes():
    # A domain error of the server must have its own class; the fallback is for the
    # framework's answers to requests this client does not make.
    domain = set(_server_codes())
    assert not domain & set(client_errors.FALLBACK_CODES)


@pytest.mark.parametrize("code", sorted(client_errors.ERRORS_BY_CODE))
def test_a_code_becomes_its_class_whatever_status_it_comes_with(code):
    status = 500 if code == "internal_error" else 418
    response = httpx.Response(status, json={"code": code, "detail": "d"})
    err = error_from_response(response)
    assert type(err) is client_errors.ERRORS_BY_CODE[code]
    assert err.code == code


def test_full_storage_reaches_the_user_as_full_storage():
    """507 storage_full: a clear sentence, not 'the server failed'."""
    response = httpx.Response(507, json={"code": "storage_full", "detail": "The server's storage "
                                         "is full", "request_id": "r1"})
    err = error_from_response(response)
    assert isinstance(err, client_errors.InsufficientStorage)
    assert not isinstance(err, client_errors.ServerError)
    assert "storage is full" in str(err) and "request id" not in str(err)
    # A 507 with a code this client does not know is still full storage.
    unknown = error_from_response(httpx.Response(507, json={"code": "disk_gone"}))
    assert isinstance(unknown, client_errors.InsufficientStorage)
