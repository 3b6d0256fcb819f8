"""The in-process SQLite write lock: writers queue on it, and every way a transaction ends gives
it back (a lock that stayed taken would stop every later write of the server)."""

from __future__ import annotations

import gc
import sqlite3
import threading

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from vault.db.engine import make_engine
from vault.db.sqlite_writes import is_read_only, serialised_write_connection

# Long enough for a thread start on a loaded machine, far below the 15 s a leaked lock costs.
FINISHES_WITHIN_S = 10.0


class _Base(DeclarativeBase):
    pass


class Note(_Base):
    __tablename__ = "notes"
    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str]


class Counter(_Base):
    __tablename__ = "counter"
    id: Mapped[int] = mapped_column(primary_key=True)
    n: Mapped[int]


@pytest.fixture
def engine(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'writes.db'}")
    _Base.metadata.create_all(engine)
    with Session(engine) as db:
        db.add(Counter(id=1, n=0))
        db.commit()
    yield engine
    engine.dispose()


def _write_lock(engine) -> threading.Lock:
    raw = engine.raw_connection()
    try:
        return type(raw.driver_connection).write_lock
    finally:
        raw.close()


def _add_note(engine, text: str) -> None:
    with Session(engine) as db:
        db.add(Note(text=text))
        db.commit()


def _notes(engine) -> list[str]:
    with Session(engine) as db:
        return sorted(db.scalars(sa.select(Note.text)))


def _a_writer_proceeds(together, engine, text: str) -> None:
    """Another thread writes and commits in time: the lock is free, not leaked."""
    together([lambda: _add_note(engine, text)], timeout=FINISHES_WITHIN_S)
    assert text in _notes(engine)


def test_concurrent_write_transactions_all_succeed_and_leave_the_lock_free(engine, together):
    lock = _write_lock(engine)
    seen_holding: list[bool] = []

    def writer(worker: int) -> None:
        for i in range(15):
            with Session(engine) as db:
                db.add(Note(text=f"{worker}-{i}"))
                db.flush()
                # Read-modify-write in one transaction: lost updates would show in the total.
                n = db.scalar(sa.select(Counter.n).where(Counter.id == 1))
                db.execute(sa.update(Counter).where(Counter.id == 1).values(n=n + 1))
                seen_holding.append(db.connection().connection.driver_connection.holds_write_lock)
                db.commit()

    together([lambda w=w: writer(w) for w in range(8)], timeout=120)

    assert len(_notes(engine)) == 8 * 15
    with Session(engine) as db:
        assert db.scalar(sa.select(Counter.n)) == 8 * 15
    assert all(seen_holding) and len(seen_holding) == 8 * 15
    assert not lock.locked()


def test_a_transaction_that_raises_midway_releases_the_lock(engine, together):
    lock = _write_lock(engine)
    with pytest.raises(RuntimeError), Session(engine) as db:
        db.add(Note(text="half"))
        db.flush()
        assert lock.locked()
        raise RuntimeError("the request failed after its first write")
    assert not lock.locked()
    _a_writer_proceeds(together, engine, "after the failure")
    assert "half" not in _notes(engine)


def test_an_error_in_the_middle_of_a_flush_releases_the_lock(engine):
    lock = _write_lock(engine)
    _add_note(engine, "taken")
    with Session(engine) as db:
        db.add(Note(text="first of the flush"))
        db.flush()
        db.add(Note(id=1, text="duplicate key"))
        with pytest.raises(IntegrityError):
            db.flush()
        db.rollback()
        assert not lock.locked()
        # The same session writes again after its rollback: it takes the lock anew.
        db.add(Note(text="retried"))
        db.commit()
        assert not lock.locked()  # at commit, not later when the session gives back its connection
    assert _notes(engine) == ["retried", "taken"]


def test_a_session_closed_without_commit_releases_the_lock(engine, together):
    lock = _write_lock(engine)
    db = Session(engine)
    db.add(Note(text="never committed"))
    db.flush()
    assert lock.locked()
    db.close()  # the pool's reset on return rolls back
    assert not lock.locked()
    _a_writer_proceeds(together, engine, "next")
    assert "never committed" not in _notes(engine)


def test_a_connection_returned_to_the_pool_mid_transaction_releases_the_lock(engine, together):
    lock = _write_lock(engine)
    conn = engine.connect()
    conn.execute(sa.insert(Note).values(text="core write"))
    assert lock.locked()
    conn.close()
    assert not lock.locked()
    _a_writer_proceeds(together, engine, "after the core write")


def test_an_invalidated_connection_releases_the_lock(engine, together):
    lock = _write_lock(engine)
    conn = engine.connect()
    conn.execute(sa.insert(Note).values(text="then invalidated"))
    assert lock.locked()
    conn.invalidate()  # what SQLAlchemy does on a disconnect error: the DB-API one is closed
    assert not lock.locked()
    conn.close()
    _a_writer_proceeds(together, engine, "after the invalidation")


def test_a_read_only_transaction_never_takes_the_lock(engine, together):
    lock = _write_lock(engine)
    _add_note(engine, "readable")
    holder = Session(engine)
    holder.add(Note(text="open write"))
    holder.flush()  # another session holds the lock for the whole test
    try:

        def read() -> list[str]:
            with Session(engine) as db:
                texts = list(db.scalars(sa.select(Note.text)))
                db.execute(sa.text("PRAGMA foreign_keys"))
                assert not db.connection().connection.driver_connection.holds_write_lock
                db.commit()
                return texts

        # Would wait for `holder` (and fail) if reads queued on the lock.
        assert together([read], timeout=FINISHES_WITHIN_S) == [["readable"]]
        assert lock.locked()
    finally:
        holder.close()
    assert not lock.locked()


def test_commit_and_rollback_in_sql_and_autocommit_writes_release_it(tmp_path):
    conn = sqlite3.connect(tmp_path / "raw.db", factory=serialised_write_connection(5.0))
    lock = type(conn).write_lock
    conn.execute("CREATE TABLE t (x)")  # DDL outside a transaction runs in autocommit
    assert not lock.locked()
    conn.execute("INSERT INTO t VALUES (1)")
    assert lock.locked() and conn.in_transaction
    conn.execute("COMMIT")
    assert not lock.locked()
    conn.execute("INSERT INTO t VALUES (2)")
    conn.execute("ROLLBACK")
    assert not lock.locked()
    with conn:
        conn.execute("INSERT INTO t VALUES (3)")
    assert not lock.locked()
    conn.execute("INSERT INTO t VALUES (4)")
    conn.isolation_level = None  # commits what was open
    assert not lock.locked()
    conn.execute("INSERT INTO t VALUES (5)")  # autocommit mode: no transaction stays open
    assert not lock.locked()
    conn.executescript("INSERT INTO t VALUES (6);")
    assert not lock.locked()
    assert [r[0] for r in conn.execute("SELECT x FROM t ORDER BY x")] == [1, 3, 4, 5, 6]
    conn.isolation_level = ""
    conn.execute("INSERT INTO t VALUES (7)")
    assert lock.locked()
    conn.close()  # rolls back the open transaction
    assert not lock.locked()


def test_a_failed_write_statement_outside_a_transaction_releases_it(tmp_path):
    conn = sqlite3.connect(tmp_path / "raw.db", factory=serialised_write_connection(5.0))
    lock = type(conn).write_lock
    with pytest.raises(sqlite3.OperationalError):
        conn.execute("INSERT INTO missing_table VALUES (1)")
    assert not lock.locked()
    conn.close()


def test_a_connection_dropped_without_close_releases_it(tmp_path):
    factory = serialised_write_connection(5.0)
    conn = sqlite3.connect(tmp_path / "raw.db", factory=factory)
    conn.execute("CREATE TABLE t (x)")
    conn.execute("INSERT INTO t VALUES (1)")
    assert factory.write_lock.locked()
    del conn
    gc.collect()
    assert not factory.write_lock.locked()


def test_a_writer_behind_a_transaction_that_never_ends_fails_instead_of_hanging(tmp_path):
    factory = serialised_write_connection(0.2)
    stuck = sqlite3.connect(tmp_path / "raw.db", factory=factory, check_same_thread=False)
    stuck.execute("CREATE TABLE t (x)")
    stuck.execute("INSERT INTO t VALUES (1)")
    other = sqlite3.connect(tmp_path / "raw.db", factory=factory, timeout=0.2)
    with pytest.raises(sqlite3.OperationalError, match="database is locked"):
        other.execute("INSERT INTO t VALUES (2)")
    assert other.execute("SELECT count(*) FROM t").fetchone() == (0,)  # reads still go
    stuck.rollback()
    other.execute("INSERT INTO t VALUES (3)")
    other.commit()
    assert not factory.write_lock.locked()
    stuck.close()
    other.close()


def test_through_sqlalchemy_the_timeout_is_the_usual_operational_error(engine, together):
    holder = Session(engine)
    holder.add(Note(text="held"))
    holder.flush()
    try:
        conn_class = type(holder.connection().connection.driver_connection)
        conn_class.lock_wait_s = 0.2
        with pytest.raises(OperationalError, match="database is locked"), Session(engine) as db:
            db.add(Note(text="blocked"))
            db.flush()
    finally:
        holder.close()
    _a_writer_proceeds(together, engine, "after the timeout")


@pytest.mark.parametrize(
    ("sql", "read_only"),
    [
        ("SELECT 1", True),
        ("  select x from t", True),
        ("PRAGMA foreign_keys=ON", True),
        ("EXPLAIN QUERY PLAN SELECT 1", True),
        ("INSERT INTO t VALUES (1)", False),
        ("UPDATE t SET x = 1 RETURNING x", False),
        ("WITH c AS (SELECT 1) INSERT INTO t SELECT * FROM c", False),
        ("SAVEPOINT sa_savepoint_1", False),
        ("/* SELECT */ DELETE FROM t", False),
        ("CREATE TABLE u (x)", False),
    ],
)
def test_which_statements_count_as_reads(sql, read_only):
    assert is_read_only(sql) is read_only
