"""Range requests (SPEC.md, "Audit leaf format 2", server 3): the skeletons of a run of leaves
and the frontier at its start, which any user reads to scan the whole log for membership
changes of a case it knows (the revocation scan), and `first_v2`, where that scan may begin.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from vault.db.models.log import LOG_STATE_ID, LogCheckpoint, LogLeaf, LogState
from vault.errors import InvalidRequest, NotFound
from vault.protocol import merkle
from vault.services.auditlog.base import DbLike, LogInconsistent
from vault.services.auditlog.tree import with_stored_subtrees

MAX_RANGE_PAGE = 1000


def first_v2(db: DbLike) -> int:
    """The index of the first format-2 leaf, recorded by migration 0005."""
    value = db.execute(
        sa.select(LogState.first_v2).where(LogState.id == LOG_STATE_ID)
    ).scalar_one_or_none()
    if value is None:
        raise LogInconsistent("the log does not record where format 2 begins")
    return int(value)


@dataclass(frozen=True)
class LeafRange:
    start: int
    skeletons: list[bytes]
    frontier: list[bytes] | None
    next: int | None


def leaf_range(
    db: DbLike, *, start: int, end: int, size: int, with_frontier: bool,
    limit: int = MAX_RANGE_PAGE,
) -> LeafRange:
    """Leaves [start, min(end, start + limit)) exactly as stored, and the frontier at start.

    `size` must be a checkpoint this server signed, so a reader checks the run against a root
    it holds. Leaves before `first_v2 - 1` are format-1 history (addresses, actors, details)
    and are not public; leaf `first_v2 - 1` is the migration's marker, readable so a client
    can check that format 2 does not begin later than the server says.
    """
    if not 0 <= start <= end <= size:
        raise InvalidRequest("a range needs from <= to <= size")
    signed = db.execute(
        sa.select(LogCheckpoint.tree_size).where(LogCheckpoint.tree_size == size)
    ).first()
    if signed is None:
        raise NotFound("no checkpoint of that size was signed")
    if start < max(first_v2(db) - 1, 0):
        raise InvalidRequest("leaves before format 2 are not public; start at first_v2 - 1")
    stop = min(end, start + max(1, min(limit, MAX_RANGE_PAGE)))
    rows = db.execute(
        sa.select(LogLeaf.leaf_index, LogLeaf.entry)
        .where(LogLeaf.leaf_index >= start, LogLeaf.leaf_index < stop)
        .order_by(LogLeaf.leaf_index)
    ).all()
    if [r.leaf_index for r in rows] != list(range(start, stop)):
        raise LogInconsistent("stored leaves are missing from a signed range")
    frontier = None
    if with_frontier:
        frontier = with_stored_subtrees(
            db, lambda sub: merkle.frontier_from_subtrees(sub, start)
        )
    return LeafRange(
        start=start,
        skeletons=[bytes(r.entry) for r in rows],
        frontier=frontier,
        next=stop if stop < end else None,
    )
