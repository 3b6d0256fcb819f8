"""Counting repeated events per window instead of logging each one (T30).

Refused login attempts and file listings can be made at any rate, and every audit leaf is
permanent: one leaf each let a single anonymous client grow the log by about 85 leaves a second.
An aggregated event is counted under its key (what the events share: action, actor, case,
source or limit, and the fixed part of the detail) in fixed windows aligned to the epoch:

- the first event of a key's window is logged at once, as its own leaf, so the start of a
  flood is visible while it lasts;
- every event of the window, that first one included, is counted in the key's database row;
- when the window has closed, its count becomes one leaf naming the window, written by the next
  event of the same key, by the sweep that any first-of-window event runs, or by an explicit
  `take_closed_windows` caller. A window with one event needs no second leaf.

So a key yields at most two leaves per window, whatever the request rate. The count is exact:
each event is one atomic upsert on the key's row (the row is locked on PostgreSQL, the database
on SQLite), in the transaction that writes the event's leaves, so a crash loses neither or both.

This module only keeps the counts; `vault.services.events.record_aggregated_event` writes the
leaves, so the leaf format stays in one place.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from vault.db.models.aggregates import EventAggregate
from vault.errors import ServiceUnavailable
from vault.protocol.encoding import canonical_json, parse_canonical

# A row found in another window is re-read under its lock; only a concurrent sweep deleting it
# in between makes the upsert miss twice, so a few rounds always settle.
_ROUNDS = 4
_TABLE = EventAggregate.__table__


@dataclass(frozen=True)
class AggregateKey:
    """What every event counted together shares; `source` None counts all addresses as one."""

    action: str
    result: str
    actor_id: str | None = None
    case_id: str | None = None
    source: str | None = None
    scope: dict[str, Any] = field(default_factory=dict)

    def digest(self) -> str:
        fields = {
            "action": self.action, "result": self.result, "actor_id": self.actor_id,
            "case_id": self.case_id, "source": self.source, "scope": self.scope,
        }
        return hashlib.sha256(canonical_json(fields)).hexdigest()


@dataclass(frozen=True)
class ClosedWindow:
    """A window whose count must now become its leaf."""

    key: AggregateKey
    start: int
    end: int
    count: int


@dataclass(frozen=True)
class Counted:
    """One event counted: `first` when it opened its window (log it individually now);
    `closed` when counting it closed an earlier window of the same key with more than one
    event (write that window's leaf first)."""

    first: bool
    start: int
    end: int
    closed: ClosedWindow | None = None


def window_bounds(now: datetime, window: int) -> tuple[int, int]:
    """[start, end) in Unix seconds of the window holding `now`, aligned to the epoch so every
    process agrees on it."""
    ts = int(now.timestamp())
    start = ts - ts % window
    return start, start + window


def _insert(db: Session) -> Any:
    dialect = db.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(_TABLE)
    if dialect == "sqlite":
        return sqlite.insert(_TABLE)
    raise ServiceUnavailable(f"event aggregation does not support the {dialect} database")


def _row_key(row: Any) -> AggregateKey:
    return AggregateKey(
        action=row.action, result=row.result, actor_id=row.actor_id, case_id=row.case_id,
        source=row.source, scope=parse_canonical(row.scope.encode("utf-8")),
    )


def count_event(db: Session, key: AggregateKey, *, now: datetime, window: int) -> Counted:
    """Count one event of `key` in the caller's transaction (the caller commits)."""
    start, end = window_bounds(now, window)
    digest = key.digest()
    table = _TABLE.c
    # The common case in one statement: a new key, or one more event in the current window.
    # When the row holds another window the WHERE fails and nothing is returned.
    insert = _insert(db).values(
        key=digest, action=key.action, result=key.result, actor_id=key.actor_id,
        case_id=key.case_id, source=key.source, scope=canonical_json(key.scope).decode(),
        window_start=start, window_end=end, count=1,
    )
    upsert = insert.on_conflict_do_update(
        index_elements=["key"],
        set_={"count": table.count + 1},
        where=table.window_start == start,
    ).returning(table.count)
    for _ in range(_ROUNDS):
        counted = db.execute(upsert).scalar_one_or_none()
        if counted is not None:
            return Counted(first=counted == 1, start=start, end=end)
        held = db.execute(
            sa.select(table.window_start, table.window_end, table.count)
            .where(table.key == digest)
            .with_for_update()
        ).one_or_none()
        if held is None:
            continue  # swept since the upsert: insert it afresh
        if held.window_start > start:
            # Another process's clock is ahead and opened the next window: count it there.
            db.execute(sa.update(_TABLE).where(table.key == digest).values(count=table.count + 1))
            return Counted(first=False, start=held.window_start, end=held.window_end)
        db.execute(
            sa.update(_TABLE)
            .where(table.key == digest)
            .values(window_start=start, window_end=end, count=1)
        )
        closed = None
        if held.count > 1:
            closed = ClosedWindow(key, held.window_start, held.window_end, held.count)
        return Counted(first=True, start=start, end=end, closed=closed)
    raise ServiceUnavailable("event counting is busy; try again")


@dataclass(frozen=True)
class Swept:
    removed: int  # rows removed, windows of one event (already a leaf) included
    closed: list[ClosedWindow]  # the windows whose count must now become a leaf


def take_closed_windows(db: Session, *, now: datetime, limit: int) -> Swept:
    """Remove up to `limit` rows whose window has closed; returns those that need a leaf.

    The caller writes their leaves in the same transaction. Rows locked by a transaction that
    is counting them are skipped (PostgreSQL), so a sweep never waits on, nor deadlocks with,
    a request; the delete is conditional, so a row that changed since it was read is left for
    its own next event.
    """
    table = _TABLE.c
    rows = db.execute(
        sa.select(_TABLE)
        .where(table.window_end <= int(now.timestamp()))
        .order_by(table.window_end, table.key)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    closed: list[ClosedWindow] = []
    removed = 0
    for row in rows:
        deleted = db.execute(
            sa.delete(_TABLE).where(
                table.key == row.key,
                table.window_start == row.window_start,
                table.count == row.count,
            )
        ).rowcount
        removed += deleted
        if deleted == 1 and row.count > 1:
            closed.append(ClosedWindow(_row_key(row), row.window_start, row.window_end, row.count))
    return Swept(removed=removed, closed=closed)
