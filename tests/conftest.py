"""Shared fixtures: which database the suite runs on, and cheap KDF settings.

CASEVAULT_TEST_DATABASE_URL selects PostgreSQL; unset means SQLite in a temporary folder. When
PostgreSQL is asked for and unreachable the run fails: it never silently falls back or skips.
Each test that asks for `database_url` gets its own empty database (SQLite: a fresh file;
PostgreSQL: a fresh schema, dropped afterwards), so tests never share state.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
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


@pytest.fixture
def database_url(tmp_path) -> Iterator[str]:
    """A URL to a fresh, empty database of the kind this run tests."""
    if not POSTGRES_URL:
        yield f"sqlite:///{tmp_path / 'casevault.db'}"
        return
    schema = "t_" + secrets.token_hex(8)
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in POSTGRES_URL else "?"
    yield f"{POSTGRES_URL}{sep}options={quote('-csearch_path=' + schema)}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()
