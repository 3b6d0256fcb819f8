"""In-process hand-off of SQLite's single write lock.

SQLite lets one connection write at a time. A writer that finds the lock taken sleeps in
SQLite's busy handler (up to 100 ms a sleep) and polls again, so with many writers on the
threadpool throughput collapses and the tail grows to seconds. Here the writers of one process
queue on a threading lock instead: a connection takes it before the first write statement of a
transaction and gives it back the moment that transaction ends, which wakes the next writer at
once. Other processes still meet SQLite's own lock and busy timeout.

The lock is kept by the DB-API connection (a `sqlite3.Connection` subclass passed to
`sqlite3.connect` as its factory) because every way a transaction ends passes through it:
commit() and rollback() (SQLAlchemy's reset on return to the pool is a rollback()), close()
(invalidation, disposal, pool overflow), the connection's context manager, switching to
autocommit, a statement after which SQLite has no transaction open (a COMMIT or ROLLBACK in
SQL, an autocommit write, an error SQLite answered with a rollback), and garbage collection.
"""

from __future__ import annotations

import sqlite3
import threading
from typing import Any

# Statements that never take SQLite's write lock. Anything else (INSERT, UPDATE, DELETE,
# REPLACE, DDL, BEGIN, SAVEPOINT, a WITH or a leading comment) is treated as a write: a
# statement wrongly counted as a write only costs a short wait, a write counted as a read would
# go back to polling in the busy handler.
_READ_ONLY = ("SELECT", "PRAGMA", "EXPLAIN")


def is_read_only(sql: str) -> bool:
    return sql.lstrip()[:7].upper().startswith(_READ_ONLY)


class SerialisedWriteConnection(sqlite3.Connection):
    """A sqlite3 connection that holds its class's `write_lock` while it has a write open."""

    write_lock: threading.Lock
    lock_wait_s: float
    holds_write_lock = False

    def claim_write_lock(self, sql: str | None) -> None:
        """Take the lock before `sql` unless it is read-only or already held (None: a script,
        which may hold anything)."""
        if self.holds_write_lock or (sql is not None and is_read_only(sql)):
            return
        # Bounded like SQLite's busy timeout, with the same error: a writer stuck behind a
        # transaction that never ends fails instead of hanging its thread for ever.
        if not self.write_lock.acquire(timeout=self.lock_wait_s):
            raise sqlite3.OperationalError("database is locked")
        self.holds_write_lock = True

    def settle_write_lock(self) -> None:
        """Give the lock back if SQLite has no transaction open on this connection."""
        if self.holds_write_lock and not self.in_transaction:
            self.release_write_lock()

    def release_write_lock(self) -> None:
        if self.holds_write_lock:
            self.holds_write_lock = False
            self.write_lock.release()

    def cursor(self, factory: Any = None) -> sqlite3.Cursor:
        return super().cursor(factory or SerialisedWriteCursor)

    # The connection's own shortcuts do not go through cursor(): route them through it.
    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        return self.cursor().execute(sql, parameters)

    def executemany(self, sql: str, parameters: Any, /) -> sqlite3.Cursor:
        return self.cursor().executemany(sql, parameters)

    def executescript(self, script: str, /) -> sqlite3.Cursor:
        return self.cursor().executescript(script)

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self.settle_write_lock()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.settle_write_lock()

    def close(self) -> None:
        try:
            super().close()
        finally:
            # Closing rolls back whatever was open; in_transaction is unreadable from now on.
            self.release_write_lock()

    def __exit__(self, *exc: Any) -> Any:
        try:
            return super().__exit__(*exc)
        finally:
            self.settle_write_lock()

    # Setting isolation_level to None commits an open transaction (autocommit mode).
    @property
    def isolation_level(self) -> str | None:
        return sqlite3.Connection.isolation_level.__get__(self)

    @isolation_level.setter
    def isolation_level(self, value: str | None) -> None:
        try:
            sqlite3.Connection.isolation_level.__set__(self, value)
        finally:
            self.settle_write_lock()

    def __del__(self) -> None:
        # A connection dropped without close() is closed, and rolled back, by its finaliser.
        self.release_write_lock()


class SerialisedWriteCursor(sqlite3.Cursor):
    connection: SerialisedWriteConnection

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        conn = self.connection
        conn.claim_write_lock(sql)
        try:
            return super().execute(sql, parameters)
        finally:
            conn.settle_write_lock()

    def executemany(self, sql: str, parameters: Any, /) -> sqlite3.Cursor:
        conn = self.connection
        conn.claim_write_lock(sql)
        try:
            return super().executemany(sql, parameters)
        finally:
            conn.settle_write_lock()

    def executescript(self, script: str, /) -> sqlite3.Cursor:
        conn = self.connection
        conn.claim_write_lock(None)
        try:
            return super().executescript(script)
        finally:
            conn.settle_write_lock()


def serialised_write_connection(lock_wait_s: float) -> type[SerialisedWriteConnection]:
    """A connection class with its own write lock: one per engine, shared by its pool."""
    return type(
        "SerialisedWriteConnection",
        (SerialisedWriteConnection,),
        {"write_lock": threading.Lock(), "lock_wait_s": lock_wait_s},
    )
