"""Appending to the log: every audit event becomes one leaf, in the same transaction as the
event row, so a crash leaves neither or both.

Appends lock the single `log_state` row (FOR UPDATE on PostgreSQL; on SQLite the write lock
taken by the first write), extend the compact range and store the perfect subtrees that the new
leaf completes: O(log n) work, never a full recompute.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from vault.db.models.log import LOG_STATE_ID, LogLeaf, LogNode, LogState
from vault.protocol import merkle
from vault.services.auditlog.base import DbLike, LogInconsistent, split_frontier
from vault.services.auditlog.entries import (
    AUDIT_EVENTS,
    entry_for_event,
    leaf_for_event,
    select_event_rows,
)

_STATE = LogState.__table__
_LEAVES = LogLeaf.__table__
_NODES = LogNode.__table__


# Built once: constructing statements per append cost more than executing them.
_HEAD_CACHE = "casevault.log_head"
_SELECT_HEAD_FOR_UPDATE = (
    sa.select(_STATE.c.size, _STATE.c.frontier)
    .where(_STATE.c.id == LOG_STATE_ID)
    .with_for_update()
)
# A no-op write takes SQLite's single write lock before the head is read, in one step.
_CLAIM_HEAD_SQLITE = (
    sa.update(_STATE)
    .where(_STATE.c.id == LOG_STATE_ID)
    .values(size=_STATE.c.size)
    .returning(_STATE.c.size, _STATE.c.frontier)
)
_MOVE_HEAD_IF = (
    sa.update(_STATE)
    .where(
        _STATE.c.id == LOG_STATE_ID,
        _STATE.c.size == sa.bindparam("old_size"),
        _STATE.c.frontier == sa.bindparam("old_frontier"),
    )
    .values(size=sa.bindparam("new_size"), frontier=sa.bindparam("new_frontier"))
)
_INSERT_LEAVES = sa.insert(_LEAVES)
_INSERT_NODES = sa.insert(_NODES)


def _connection(db: DbLike) -> Connection:
    # Core statements on the session's own connection (same transaction), without the ORM's
    # per-statement autoflush and execution bookkeeping.
    return db.connection() if isinstance(db, Session) else db


def _lock_state(conn: Connection) -> tuple[int, list[bytes]]:
    """Read the log head under the lock that serialises appends across processes."""
    if conn.dialect.name == "postgresql":
        row = conn.execute(_SELECT_HEAD_FOR_UPDATE).one_or_none()
    else:
        row = conn.execute(_CLAIM_HEAD_SQLITE).one_or_none()
    if row is None:
        raise LogInconsistent("the log head row is missing")
    frontier = split_frontier(row.frontier)
    if len(frontier) != bin(row.size).count("1"):
        raise LogInconsistent("the log head is corrupt")
    return row.size, frontier


@dataclass(frozen=True)
class PendingLeaf:
    entry: bytes
    event_id: int
    case_id: str | None
    actor_id: str | None
    # The format-2 body the entry (a skeleton) names; None for a format-1 entry.
    body: bytes | None = None


def _extend(size: int, frontier: list[bytes], leaves: Sequence[PendingLeaf]):
    leaf_rows, node_rows = [], []
    for leaf in leaves:
        lh = merkle.leaf_hash(leaf.entry)
        frontier, completed = merkle.append_to_frontier(frontier, size, lh)
        row = {
            "leaf_index": size,
            "event_id": leaf.event_id,
            "entry": leaf.entry,
            "leaf_hash": lh,
            "case_id": leaf.case_id,
            "actor_id": leaf.actor_id,
        }
        # Format-1 rows name no body: migration 0003 appends them before the column exists.
        if leaf.body is not None:
            row["body"] = leaf.body
        leaf_rows.append(row)
        node_rows.extend({"level": lv, "index": ix, "hash": h} for lv, ix, h in completed)
        size += 1
    return size, frontier, leaf_rows, node_rows


def append_leaves(db: DbLike, leaves: Sequence[PendingLeaf]) -> list[int]:
    """Append leaves in order inside the caller's transaction; returns their indices.

    Each pooled connection remembers the head it last wrote. The append first tries to move
    the head from that remembered state with one conditional UPDATE, which takes the same
    lock as reading it (the row lock on PostgreSQL, the write lock on SQLite). The condition
    names the whole head (size and compact range, a hash of every entry), so it only matches
    if no other process appended meanwhile and no rolled-back transaction is remembered;
    otherwise the head is read under the lock and the append proceeds as before. One
    statement saved per append, and nothing is trusted that the database did not confirm.
    """
    if not leaves:
        return []
    if len({leaf.body is None for leaf in leaves}) != 1:
        raise ValueError("append format-1 and format-2 leaves in separate calls")
    conn = _connection(db)
    first = None
    cached = conn.info.get(_HEAD_CACHE)
    if cached is not None:
        size, frontier = cached
        new_size, new_frontier, leaf_rows, node_rows = _extend(size, list(frontier), leaves)
        moved = conn.execute(
            _MOVE_HEAD_IF,
            {
                "old_size": size,
                "old_frontier": b"".join(frontier),
                "new_size": new_size,
                "new_frontier": b"".join(new_frontier),
            },
        )
        if moved.rowcount == 1:
            first = size
    if first is None:
        conn.info.pop(_HEAD_CACHE, None)
        size, frontier = _lock_state(conn)
        new_size, new_frontier, leaf_rows, node_rows = _extend(size, frontier, leaves)
        conn.execute(
            _MOVE_HEAD_IF,
            {
                "old_size": size,
                "old_frontier": b"".join(frontier),
                "new_size": new_size,
                "new_frontier": b"".join(new_frontier),
            },
        )
        first = size
    conn.execute(_INSERT_LEAVES, leaf_rows)
    if node_rows:
        conn.execute(_INSERT_NODES, node_rows)
    conn.info[_HEAD_CACHE] = (new_size, tuple(new_frontier))
    return list(range(first, new_size))


def append_event(db: DbLike, event: Any) -> int:
    """Make a flushed audit event a format-2 leaf of the log; returns its leaf index.

    Every append is format 2: migration 0005 recorded `first_v2` as the size before the first
    one, and nothing after it writes format 1 (SPEC.md, "Audit leaf format 2", server 1).
    """
    skeleton, body = leaf_for_event(event)
    leaf = PendingLeaf(skeleton, int(event.id), event.case_id, event.actor_id, body)
    return append_leaves(db, [leaf])[0]


def backfill_events(conn: Connection, batch: int = 1000) -> int:
    """Append every event that has no leaf yet as a format-1 leaf, in id order.

    For migrations 0003 (the history) and 0005 (its closing marker) only, which run before
    `first_v2` exists; after it, a format-1 leaf would break the log's format rule.
    """
    events = select_event_rows().order_by(AUDIT_EVENTS.c.id)
    logged = {r[0] for r in conn.execute(sa.select(LogLeaf.event_id))}
    total = 0
    pending: list[PendingLeaf] = []
    for row in conn.execute(events):
        if row.id in logged:
            continue
        pending.append(PendingLeaf(entry_for_event(row), row.id, row.case_id, row.actor_id))
        if len(pending) >= batch:
            total += len(append_leaves(conn, pending))
            pending = []
    total += len(append_leaves(conn, pending))
    return total
