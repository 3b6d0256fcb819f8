"""Shared fixtures: which database the suite runs on, and cheap KDF settings.

CASEVAULT_TEST_DATABASE_URL selects PostgreSQL; unset means SQLite in a temporary folder. When
PostgreSQL is asked for and unreachable the run fails: it never silently falls back or skips.
Each test that asks for `database_url` gets its own empty database (SQLite: a fresh file;
PostgreSQL: a fresh schema, dropped afterwards), so tests never share state.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

import pytest
import sqlalchemy as sa

POSTGRES_URL = os.environ.get("CASEVAULT_TEST_DATABASE_URL", "").strip()


def pytest_report_header(config: pytest.Config) -> str:
    return f"casevault database: {'PostgreSQL ' + POSTGRES_URL if POSTGRES_URL else 'SQLite'}"


def pytest_sessionstart(session: pytest.Session) -> None:
    if not POSTGRES_URL:
        return
    try:
        with sa.create_engine(POSTGRES_URL).connect() as conn:
            conn.execute(sa.text("select 1"))
    except Exception as exc:  # any failure to reach it must stop the run
        raise pytest.UsageError(
            f"CASEVAULT_TEST_DATABASE_URL is set but PostgreSQL is unreachable: {exc}"
        ) from exc


@contextmanager
def _fresh_schema() -> Iterator[str]:
    """A new, empty PostgreSQL schema (dropped afterwards) and a URL whose search_path is it."""
    schema = "t_" + secrets.token_hex(8)
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{sep}options={quote('-csearch_path=' + schema)}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def database_url(tmp_path) -> Iterator[str]:
    """A URL to a fresh, empty database of the kind this run tests."""
    if not POSTGRES_URL:
        yield f"sqlite:///{tmp_path / 'casevault.db'}"
        return
    with _fresh_schema() as url:
        yield url


@pytest.fixture
def second_database_url(tmp_path) -> Iterator[str]:
    """Another fresh, empty database, for tests that compare two."""
    if not POSTGRES_URL:
        yield f"sqlite:///{tmp_path / 'second' / 'casevault.db'}"
        return
    with _fresh_schema() as url:
        yield url


def run_together(actions, *, timeout: float = 60.0) -> list:
    """Call every action on its own thread, all released at one moment by a barrier; returns
    their results in the order given. A thread's exception is raised here rather than lost,
    and a thread that never arrives or never finishes fails the test instead of hanging it."""
    from concurrent.futures import ThreadPoolExecutor

    barrier = threading.Barrier(len(actions))

    def start(action):
        barrier.wait(timeout)
        return action()

    with ThreadPoolExecutor(max_workers=len(actions)) as pool:
        futures = [pool.submit(start, action) for action in actions]
        return [future.result(timeout=timeout) for future in futures]


@pytest.fixture
def together():
    """`together([callable, ...])` -> their results, the calls started at the same moment."""
    return run_together


# ---------------------------------------------------------------- server app and accounts
#
# `app_settings` gives a fresh database what Alembic makes of it (Alembic runs once per test run
# on the database under test; see MigratedTemplate) and turns on the test-only cheap KDF.
# `clock` is a fake clock the accounts service reads (TOTP steps, session expiry); advance it
# to move time. `make_user(name)` registers, activates and logs in a user in one call and
# returns a TestUser with a bearer token.


class FakeClock:
    """A settable UTC clock, starting at the real time so stored times look ordinary."""

    def __init__(self) -> None:
        from datetime import UTC, datetime

        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self):
        return self.now

    def advance(self, seconds: float) -> None:
        from datetime import timedelta

        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


class MigratedTemplate:
    """A fresh database brought to the head revision by Alembic, cheaply, for every test.

    Alembic runs once per test run on the database kind under test; each test then gets an
    exact copy of its result: on SQLite a copy of the migrated file, on PostgreSQL the very
    SQL statements Alembic sent, replayed in the test's fresh schema (the schema is chosen by
    search_path, so the statements name no schema). A full Alembic run per test cost about
    half a second each, for some two hundred tests. A test (test_migrated_template.py) checks
    that a copy has the same tables, columns, indexes and revision as a real upgrade.
    """

    def __init__(self, root) -> None:
        self._root = root
        self._sqlite_file = None
        self._statements: list[tuple[str, object]] | None = None

    def _build_sqlite(self):
        from vault.db.migrate import upgrade_database

        path = self._root / "template.db"
        upgrade_database(f"sqlite:///{path}")
        # The engine is disposed, so SQLite has folded its write-ahead log into the file.
        assert not path.with_name(path.name + "-wal").exists()
        return path

    def _record_postgres(self) -> list[tuple[str, object]]:
        from vault.db.engine import make_engine
        from vault.db.migrate import upgrade_engine

        statements: list[tuple[str, object]] = []
        with _fresh_schema() as url:
            engine = make_engine(url)

            def record(conn, cursor, statement, parameters, context, executemany):
                statements.append((statement, parameters))

            sa.event.listen(engine, "before_cursor_execute", record)
            try:
                upgrade_engine(engine)
            finally:
                engine.dispose()
        return statements

    def copy_to(self, url: str) -> None:
        """Make the empty database at `url` a migrated one."""
        import shutil

        if not POSTGRES_URL:
            if self._sqlite_file is None:
                self._sqlite_file = self._build_sqlite()
            target = sa.engine.make_url(url).database
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if os.path.exists(target):
                raise RuntimeError(f"{target} is not a fresh database")
            shutil.copyfile(self._sqlite_file, target)
            return
        if self._statements is None:
            self._statements = self._record_postgres()
        engine = sa.create_engine(url)
        try:
            with engine.begin() as conn:
                for statement, parameters in self._statements:
                    conn.exec_driver_sql(statement, parameters if parameters else None)
        finally:
            engine.dispose()


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory) -> MigratedTemplate:
    return MigratedTemplate(tmp_path_factory.mktemp("migrated-template"))


@pytest.fixture
def app_settings(database_url, tmp_path, migrated_template):
    from vault.config import Settings

    migrated_template.copy_to(database_url)
    return Settings(
        data_dir=tmp_path / "server-data",
        database_url=database_url,
        test_insecure_kdf=True,
        # Many users log in from the one test address; per-address limits get their own tests.
        rate_limit_address_attempts=100_000,
    )


@pytest.fixture
def app(app_settings, clock):
    from vault.api.app import create_app

    return create_app(app_settings, clock=clock)


@pytest.fixture
def client(app):
    from fastapi.testclient import TestClient

    with TestClient(app) as test_client:
        yield test_client


class TestUser:
    """Everything a test needs to act as a registered user."""

    __test__ = False  # not a test class

    def __init__(self, **fields) -> None:
        self.__dict__.update(fields)
        self.token: str | None = None
        self.session_id: str | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def totp_at(self, when) -> str:
        import pyotp

        return pyotp.TOTP(self.totp_secret).at(when)


def new_registration(username: str, *, ops: int = 1, mem: int = 8 * 1024 * 1024):
    """A registration body with a real self-signed identity and the secrets behind it."""
    import nacl.signing

    from vault.protocol.encoding import b64e
    from vault.protocol.ids import new_id
    from vault.protocol.records import (
        KEM_PK_BYTES,
        LABEL_IDENTITY,
        identity_body,
        sign_record,
    )

    signing_key = nacl.signing.SigningKey.generate()
    user_id = new_id()
    body = identity_body(
        user_id=user_id,
        username=username,
        sign_pk=bytes(signing_key.verify_key),
        kem_pk=secrets.token_bytes(KEM_PK_BYTES),
        created_at=1_700_000_000,
    )
    auth_key = b64e(secrets.token_bytes(32))
    recovery_auth = b64e(secrets.token_bytes(32))
    request = {
        "username": username,
        "kdf": {"salt": b64e(secrets.token_bytes(16)), "ops": ops, "mem": mem},
        "auth_key": auth_key,
        "identity": sign_record(LABEL_IDENTITY, body, signing_key),
        "identity_wrapped_kek": b64e(secrets.token_bytes(120)),
        "identity_wrapped_recovery": b64e(secrets.token_bytes(120)),
        "recovery_auth": recovery_auth,
    }
    return request, TestUser(
        username=username,
        user_id=user_id,
        auth_key=auth_key,
        recovery_auth=recovery_auth,
        signing_key=signing_key,
        registration=request,
    )


@pytest.fixture
def registration():
    """`registration(username)` -> (request body, TestUser without a token)."""
    return new_registration


@pytest.fixture
def make_user(client, clock):
    """`make_user(username)` -> an active, logged-in TestUser (token in `.headers`).

    Activation uses the clock's current TOTP step; the clock moves one step on, so the next
    code the test asks for is fresh.
    """
    from urllib.parse import parse_qs, urlparse

    def _make(username: str) -> TestUser:
        body, user = new_registration(username)
        response = client.post("/v1/accounts/register", json=body)
        assert response.status_code == 201, response.text
        enrolment = response.json()
        user.totp_uri = enrolment["totp_uri"]
        user.totp_secret = parse_qs(urlparse(enrolment["totp_uri"]).query)["secret"][0]
        user.recovery_codes = enrolment["recovery_codes"]
        response = client.post(
            "/v1/accounts/activate",
            json={
                "username": username,
                "auth_key": user.auth_key,
                "totp": user.totp_at(clock.now),
            },
        )
        assert response.status_code == 200, response.text
        login = response.json()
        user.token = login["token"]
        user.session_id = login["session_id"]
        clock.advance(30)
        return user

    return _make
