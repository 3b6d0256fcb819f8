"""Log entries: the exact bytes of the leaf an audit event becomes, and reading entries back
for the members of a case or the actor who made them.

Leaves before `first_v2` are format 1 (`entry_for_event`, the whole record, history the clients
pinned); every leaf from it on is format 2 (`leaf_for_event`: a public skeleton and a body whose
source address is a salted commitment).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from vault.db.base import UTCDateTime
from vault.db.models.accounts import User
from vault.db.models.cases import CaseMember
from vault.db.models.log import LogLeaf
from vault.errors import NotFound
from vault.protocol import logentry
from vault.protocol.encoding import EncodingError, canonical_json, parse_canonical
from vault.services.auditlog.base import DbLike

ENTRY_VERSION = "cv1/audit-entry"
MAX_ENTRIES_PAGE = 1000

# The audit_events table as the migration that built the log knew it: an entry is made from
# these columns only, so the backfill and `verify-log` read them without the ORM model.
AUDIT_EVENTS = sa.table(
    "audit_events",
    *(
        sa.column(name)
        for name in (
            "id", "time", "actor_id", "action", "case_id", "file_id", "source", "result",
            "detail", "signed_record",
        )
    ),
)


# The same table from migration 0005 on, with the nonce of the source commitment.
AUDIT_EVENTS_2 = sa.table(
    "audit_events", *(sa.column(c.name) for c in AUDIT_EVENTS.c), sa.column("source_nonce")
)


def select_event_rows(*, with_nonce: bool = False) -> sa.Select:
    """The columns `entry_for_event` (and, with_nonce, `leaf_for_event`) read, with times as
    aware UTC datetimes. Migration 0003 reads the table before it had a nonce column."""
    columns = (AUDIT_EVENTS_2 if with_nonce else AUDIT_EVENTS).c
    return sa.select(
        columns.id,
        sa.type_coerce(columns.time, UTCDateTime()).label("time"),
        *(columns[n] for n in ("actor_id", "action", "case_id", "file_id", "source")),
        *(columns[n] for n in ("result", "detail", "signed_record")),
        *((columns.source_nonce,) if with_nonce else ()),
    )


def _embed(text: str | None) -> Any:
    """Stored canonical JSON travels as an object; anything else as the exact text."""
    if text is None:
        return None
    try:
        return parse_canonical(text.encode("utf-8"))
    except EncodingError:
        return text


def format_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def entry_for_event(event: Any) -> bytes:
    """The exact bytes of the leaf for an audit_events row (ORM object or Core row)."""
    record = {
        "v": ENTRY_VERSION,
        "event_id": int(event.id),
        "time": format_time(event.time),
        "action": event.action,
        "result": event.result,
        "actor_id": event.actor_id,
        "case_id": event.case_id,
        "file_id": event.file_id,
        "source": event.source,
        "detail": _embed(event.detail),
        # The client's own signature travels in the leaf: the server cannot invent the action.
        "signed_record": _embed(event.signed_record),
    }
    return canonical_json(record)


def leaf_for_event(event: Any) -> tuple[bytes, bytes]:
    """(skeleton, body) of the format-2 leaf for an audit_events row that has its nonce.

    Built by `logentry.build_leaf`, which checks both with the readers' own parser.
    """
    source = None
    if event.source is not None:
        source = (event.source, bytes(event.source_nonce))
    signed = _embed(event.signed_record)
    return logentry.build_leaf(
        event_id=int(event.id),
        time=format_time(event.time),
        action=str(event.action),
        result=event.result,
        actor_id=event.actor_id,
        case_id=event.case_id,
        file_id=event.file_id,
        source=source,
        detail=_embed(event.detail),
        signed_record=signed,
    )


def source_openings(db: DbLike, event_ids: list[int]) -> dict[int, tuple[str, bytes]]:
    """(address, nonce) of recorded events, by event id: for their actor's eyes only."""
    if not event_ids:
        return {}
    columns = AUDIT_EVENTS_2.c
    rows = db.execute(
        sa.select(columns.id, columns.source, columns.source_nonce).where(
            columns.id.in_(event_ids),
            columns.source.is_not(None),
            columns.source_nonce.is_not(None),
        )
    )
    return {int(r.id): (r.source, bytes(r.source_nonce)) for r in rows}


def entries(
    db: DbLike,
    *,
    case_id: str | None = None,
    actor_id: str | None = None,
    start: int = 0,
    end: int | None = None,
    limit: int = MAX_ENTRIES_PAGE,
) -> list[LogLeaf]:
    """Leaves of one case, or of one actor, with start <= index < end, oldest first."""
    if (case_id is None) == (actor_id is None):
        raise ValueError("select entries by exactly one of case_id or actor_id")
    query = sa.select(LogLeaf).where(LogLeaf.leaf_index >= start)
    if end is not None:
        query = query.where(LogLeaf.leaf_index < end)
    if case_id is not None:
        query = query.where(LogLeaf.case_id == case_id)
    else:
        query = query.where(LogLeaf.actor_id == actor_id)
    query = query.order_by(LogLeaf.leaf_index).limit(max(1, min(limit, MAX_ENTRIES_PAGE)))
    if isinstance(db, Session):
        return list(db.scalars(query))
    return list(db.execute(query))


def usernames(db: DbLike, user_ids: set[str]) -> dict[str, str]:
    """Usernames of actors, for display; the ids in the signed entries are what counts."""
    if not user_ids:
        return {}
    rows = db.execute(sa.select(User.id, User.username).where(User.id.in_(user_ids)))
    return {r.id: r.username for r in rows}


def leaf_index_of_event(db: DbLike, event_id: int) -> int:
    """The leaf index of a recorded event, for the receipt a client keeps of its own action."""
    index = db.execute(
        sa.select(LogLeaf.leaf_index).where(LogLeaf.event_id == event_id)
    ).scalar_one_or_none()
    if index is None:
        raise NotFound("event is not in the log")
    return index


def is_case_member(db: DbLike, *, case_id: str, user_id: str) -> bool:
    """Current members read a case's events; the caller turns anything else into a 404."""
    row = db.execute(
        sa.select(CaseMember.user_id).where(
            CaseMember.case_id == case_id, CaseMember.user_id == user_id
        )
    ).first()
    return row is not None
