"""The request session's close: a connection the database dropped is a warning; any other
failure to close is not hidden."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
from sqlalchemy.exc import OperationalError

from vault.api.deps import get_db


class _FailingClose:
    def __init__(self, invalidated: bool) -> None:
        self.invalidated = invalidated

    def close(self) -> None:
        raise OperationalError(
            "ROLLBACK", None, Exception("gone"), connection_invalidated=self.invalidated
        )


def _request(session: _FailingClose) -> SimpleNamespace:
    app = SimpleNamespace(state=SimpleNamespace(sessionmaker=lambda: session))
    return SimpleNamespace(app=app, scope={"state": {"request_id": "r1"}})


def test_a_lost_connection_at_close_is_one_warning(caplog):
    caplog.set_level(logging.WARNING)
    dependency = get_db(_request(_FailingClose(invalidated=True)))
    next(dependency)
    with pytest.raises(StopIteration):
        next(dependency)
    assert [r.getMessage() for r in caplog.records] == [
        "database connection lost closing the session request_id=r1: OperationalError"
    ]
    assert caplog.records[0].exc_info is None


def test_any_other_failure_at_close_is_raised():
    dependency = get_db(_request(_FailingClose(invalidated=False)))
    next(dependency)
    with pytest.raises(OperationalError):
        next(dependency)


def test_the_request_error_is_kept_when_the_close_also_loses_the_connection():
    dependency = get_db(_request(_FailingClose(invalidated=True)))
    next(dependency)
    with pytest.raises(KeyError, match="from the route"):
        dependency.throw(KeyError("from the route"))
