"""The CLI's one table from error classes to exit codes, looked up through the class hierarchy,
and the session-expired translation of client.api that the table relies on."""

from __future__ import annotations

import httpx
import pytest

from client import api, errors
from client.cli import exits


@pytest.mark.parametrize(("exc", "code"), [
    (errors.KeyChanged("bob", "1234"), exits.EXIT_KEY_CHANGED),
    (errors.IntegrityError("file x"), exits.EXIT_INTEGRITY),
    (errors.WeakKdfParameters(), exits.EXIT_INTEGRITY),
    (errors.ServerCopyDamaged("f" * 32), exits.EXIT_INTEGRITY),
    (errors.NotAMember("c" * 32), exits.EXIT_ERROR),
    (errors.InsufficientStorage(code="storage_full", status=507), exits.EXIT_ERROR),
    (errors.SessionExpired(code="not_authenticated", status=401), exits.EXIT_ERROR),
    (errors.KeystoreError("damaged"), exits.EXIT_ERROR),
    (errors.AuditVerificationError("fork"), exits.EXIT_ERROR),
    (errors.InvalidRecoveryCode("typo"), exits.EXIT_ERROR),
    (exits.UsageError("no input"), exits.EXIT_ERROR),
    (FileNotFoundError(2, "No such file", "a.pdf"), exits.EXIT_ERROR),
    (KeyboardInterrupt(), exits.EXIT_INTERRUPTED),
])
def test_each_error_class_has_its_exit_code(exc, code):
    assert exits.exit_code(exc) == code


def test_a_new_subclass_inherits_its_parents_code():
    class LaterVerificationError(errors.ServerCopyDamaged):
        pass

    class LaterApiError(errors.Conflict):
        pass

    assert exits.exit_code(LaterVerificationError("f" * 32)) == exits.EXIT_INTEGRITY
    assert exits.exit_code(LaterApiError()) == exits.EXIT_ERROR


def test_errors_outside_the_table_are_not_swallowed():
    # A bug is a traceback, not a one-line "error": the CLI re-raises what has no code.
    assert exits.exit_code(RuntimeError("bug")) is None
    assert exits.exit_code(SystemExit(2)) is None


def test_messages_name_verification_failures():
    assert exits.message(errors.IntegrityError("file x")) == (
        "IntegrityError: file x failed verification")
    assert exits.message(FileNotFoundError(2, "No such file", "a.pdf")) == "No such file: a.pdf"


def _answering(status: int, body: dict, token: str | None) -> api.Api:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=body)

    return api.Api("http://127.0.0.1:1", token, transport=httpx.MockTransport(handler))


def test_a_refused_saved_session_says_it_expired():
    with _answering(401, {"code": "not_authenticated"}, "token") as client, \
            pytest.raises(errors.SessionExpired, match="session expired or was ended"):
        client.me()
    # Without a token the same reply means the user never logged in.
    with _answering(401, {"code": "not_authenticated"}, None) as client, \
            pytest.raises(errors.NotAuthenticated) as info:
        client.me()
    assert not isinstance(info.value, errors.SessionExpired)


def test_every_client_error_is_a_client_error():
    names = [getattr(errors, n) for n in errors.__all__]
    classes = [c for c in names if isinstance(c, type) and issubclass(c, BaseException)]
    outside = {c.__name__ for c in classes if not issubclass(c, errors.ClientError)}
    # The two families that stay in client.crypto, named in the exit-code table instead.
    assert outside == {"IntegrityError", "WeakKdfParameters", "InvalidRecoveryCode"}
    assert all(c in exits.EXIT_CODES or any(b in exits.EXIT_CODES for b in c.__mro__)
               for c in classes)
