"""The database drops its connections: replies are a clean 503 problem+json or, for a request
already answered, nothing at all; the server log shows a warning line, never a traceback.

The long version under load is bench/reliability_pg_restart.py.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, text
from sqlalchemy.orm import Session, sessionmaker

from bench.harness import ServerProc, new_lawyer
from bench.reliability_pg_restart import Relay
from vault.api.deps import DbSession

POSTGRES_URL = os.environ.get("CASEVAULT_TEST_DATABASE_URL", "").strip()


def _drop_connection(db: Session) -> None:
    """Cut the session's database connection the way a restart or a network cut does: the
    socket under PostgreSQL's client is shut down; SQLite's file handle is closed."""
    _drop_dbapi_connection(db.connection().connection.dbapi_connection)


def _drop_dbapi_connection(dbapi: Any) -> None:
    pgconn = getattr(dbapi, "pgconn", None)
    if pgconn is None:
        dbapi.close()
        return
    sock = socket.socket(fileno=os.dup(pgconn.socket))
    try:
        sock.shutdown(socket.SHUT_RDWR)
    finally:
        sock.close()


class _DropBeforeClose(Session):
    """A session whose connection is lost after the reply was built, just before the closing
    rollback: a restart landing here fails that rollback after the reply is on its way."""

    def close(self) -> None:
        if self.in_transaction():
            _drop_connection(self)
        super().close()


def _no_tracebacks(records: list[logging.LogRecord]) -> None:
    crashed = [r for r in records if r.exc_info or r.levelno >= logging.ERROR]
    assert not crashed, [f"{r.name}: {r.getMessage()}" for r in crashed]


def test_connection_lost_before_the_session_closes_is_a_warning(app, client, make_user, caplog):
    alice = make_user("alice")
    usual = app.state.sessionmaker
    app.state.sessionmaker = sessionmaker(
        bind=app.state.engine, class_=_DropBeforeClose, expire_on_commit=False
    )
    caplog.set_level(logging.WARNING)
    try:
        # TestClient raises whatever escapes the app: a failed rollback that is not handled
        # surfaces as "Caught handled exception, but response already started".
        reply = client.get("/v1/me", headers=alice.headers)
    finally:
        app.state.sessionmaker = usual
    assert reply.status_code == 200, reply.text
    assert reply.json()["username"] == "alice"
    _no_tracebacks(caplog.records)
    warnings = [r.getMessage() for r in caplog.records if r.name == "vault.api"]
    assert len(warnings) == 1, warnings
    assert "database connection lost closing the session" in warnings[0]
    assert reply.headers["x-request-id"] in warnings[0]
    # The lost connection went back to the pool invalidated: the next request gets a new one.
    again = client.get("/v1/me", headers=alice.headers)
    assert again.status_code == 200, again.text
    assert app.state.engine.pool.checkedout() == 0


def test_connection_lost_during_a_query_is_a_503(app, client, make_user, caplog):
    alice = make_user("alice")

    def drop(_session: Session, _transaction: Any, connection: Any) -> None:
        # Checked out (and pinged) from the pool, then lost before the first statement.
        _drop_dbapi_connection(connection.connection.dbapi_connection)

    caplog.set_level(logging.WARNING)
    event.listen(app.state.sessionmaker, "after_begin", drop)
    try:
        reply = client.get("/v1/me", headers=alice.headers)
    finally:
        event.remove(app.state.sessionmaker, "after_begin", drop)
    assert reply.status_code == 503, reply.text
    assert reply.headers["content-type"].startswith("application/problem+json")
    assert reply.json()["code"] == "unavailable"
    assert "Retry-After" in reply.headers
    _no_tracebacks(caplog.records)
    assert client.get("/v1/me", headers=alice.headers).status_code == 200


@pytest.mark.skipif(not POSTGRES_URL, reason="the outage is a PostgreSQL server going away")
def test_outage_under_load_gives_503_then_recovers_without_traceback(
    tmp_path, database_url, servers, monkeypatch
):
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(database_url)
    relay = Relay((parts.hostname or "127.0.0.1", parts.port or 5432))
    netloc = parts.netloc.replace(
        f"{parts.hostname}:{parts.port or 5432}", f"127.0.0.1:{relay.port}"
    )
    server = ServerProc(tmp_path / "server", database_url=urlunsplit(parts._replace(netloc=netloc)))
    servers.append(server)
    try:
        server.start()
        vault, _ = new_lawyer(server.url, tmp_path / "home")
        case_id = vault.create_case("R v Outage")
        token = vault.keystore.load_session()
        replies: list[httpx.Response | Exception] = []
        stop = threading.Event()

        def load() -> None:
            with httpx.Client(
                base_url=server.url, timeout=30, headers={"Authorization": f"Bearer {token}"}
            ) as http:
                while not stop.is_set():
                    for path in (f"/v1/cases/{case_id}/files", "/v1/me"):
                        try:
                            replies.append(http.get(path))
                        except httpx.TransportError as exc:
                            replies.append(exc)

        workers = [threading.Thread(target=load) for _ in range(3)]
        for worker in workers:
            worker.start()
        time.sleep(1.0)
        relay.outage(1.5)
        back = len(replies)
        time.sleep(2.0)
        stop.set()
        for worker in workers:
            worker.join(timeout=30)
    finally:
        server.stop()
        relay.close()
    dropped = [r for r in replies if isinstance(r, Exception)]
    assert not dropped, dropped[:3]
    statuses = {r.status_code for r in replies}
    assert statuses <= {200, 503}, statuses
    assert 503 in statuses, "the outage was not seen: the relay did not cut the connections"
    for reply in replies:
        if reply.status_code == 503:
            assert reply.headers["content-type"].startswith("application/problem+json")
    assert any(r.status_code == 200 for r in replies[back:]), "no success after the outage"
    log = server.log_text()
    assert "Traceback" not in log, log[log.find("Traceback") :][:3000]


def test_other_database_errors_still_show_as_bugs(app, client, make_user, caplog):
    """Only a lost connection is an outage: a constraint broken by a bug is a 500 whose
    traceback reaches the log under the request id."""

    @app.get("/v1/test-broken-constraint")
    def broken(db: DbSession) -> None:
        db.execute(text("CREATE TEMPORARY TABLE broken (id INTEGER PRIMARY KEY)"))
        db.execute(text("INSERT INTO broken (id) VALUES (1)"))
        db.execute(text("INSERT INTO broken (id) VALUES (1)"))

    caplog.set_level(logging.WARNING)
    with TestClient(app, raise_server_exceptions=False) as quiet:
        reply = quiet.get("/v1/test-broken-constraint")
    assert reply.status_code == 500, reply.text
    assert reply.json()["code"] == "internal_error"
    rid = reply.json()["request_id"]
    logged = [r for r in caplog.records if r.name == "vault.api" and rid in r.getMessage()]
    assert len(logged) == 1 and logged[0].levelno == logging.ERROR
    assert logged[0].exc_info is not None and logged[0].exc_info[0].__name__ == "IntegrityError"
