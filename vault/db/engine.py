"""Engine and session factories: SQLite (WAL, foreign keys, busy timeout) or PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from vault.db.sqlite_writes import serialised_write_connection

SQLITE_BUSY_TIMEOUT_MS = 15_000


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        # WAL lets readers run while one writer commits; foreign keys are off by default.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def make_engine(url: str) -> Engine:
    """An engine for `url`, configured for the database it points at."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        timeout_s = SQLITE_BUSY_TIMEOUT_MS / 1000
        engine = create_engine(
            url,
            connect_args={
                "check_same_thread": False,
                "timeout": timeout_s,
                # Writers of this process queue on a lock handed over at once, instead of
                # polling SQLite's write lock from its busy handler (see sqlite_writes).
                "factory": serialised_write_connection(timeout_s),
            },
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    # expire_on_commit=False: services commit and then still return the rows they wrote.
    return sessionmaker(bind=engine, expire_on_commit=False)
