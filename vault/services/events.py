"""The one recorder of audit events. Every service calls `record_event`, or for the events that
are counted per window (refused attempts, listings: T30) `record_aggregated_event`.

It adds the row to the caller's transaction and flushes it; the caller commits. For failures,
commit before raising the error, or the rollback erases the evidence.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from vault.db.base import utcnow
from vault.db.models import AuditEvent
from vault.db.models.events import RESULT_FAILURE, RESULT_SUCCESS
from vault.protocol.encoding import canonical_json
from vault.protocol.events import AGGREGATED_EVENTS, Action
from vault.protocol.logentry import SOURCE_NONCE_BYTES
from vault.services.auditlog import append_event
from vault.services.auditlog.aggregate import (
    AggregateKey,
    ClosedWindow,
    count_event,
    take_closed_windows,
)

__all__ = [
    "RESULT_FAILURE",
    "RESULT_SUCCESS",
    "RecordedEvent",
    "flush_closed_windows",
    "record_aggregated_event",
    "record_event",
]

# Closed windows of other keys written by each first-of-window event: enough to keep up with
# the keys a busy server opens, small enough that no request carries much of the sweep.
SWEEP_BATCH = 8

_ACTION = re.compile(r"^[a-z0-9_-]+(:[a-z0-9_-]+){1,3}$")


@dataclass(frozen=True)
class RecordedEvent:
    """An event as recorded: its row id and the index of the leaf it became in the audit log,
    which a route hands back to the client as the receipt of its own action."""

    event_id: int
    log_index: int


def record_event(
    db: Session,
    *,
    action: str,
    result: str = RESULT_SUCCESS,
    actor_id: str | None = None,
    case_id: str | None = None,
    file_id: str | None = None,
    source: str | None = None,
    detail: dict[str, Any] | None = None,
    signed_record: str | None = None,
    now: datetime | None = None,
) -> RecordedEvent:
    """Append one event, e.g. action=Action.LOGIN_FAILED. Never put secrets in `detail`."""
    if result not in (RESULT_SUCCESS, RESULT_FAILURE):
        raise ValueError(f"unknown event result {result!r}")
    if not _ACTION.fullmatch(action):
        raise ValueError(f"action must look like source:subject:action, got {action!r}")
    event = AuditEvent(
        time=now or utcnow(),
        actor_id=actor_id,
        # Plain text, as the row reads back, so the leaf built now equals one rebuilt later.
        action=str(action),
        case_id=case_id,
        file_id=file_id,
        source=source,
        # Fresh per event, from the OS CSPRNG: equal addresses must give unequal commitments.
        source_nonce=secrets.token_bytes(SOURCE_NONCE_BYTES) if source is not None else None,
        result=result,
        detail=canonical_json(detail or {}).decode("utf-8"),
        signed_record=signed_record,
    )
    db.add(event)
    db.flush()
    # Same transaction: the event and its Merkle leaf are committed together or not at all.
    return RecordedEvent(event_id=int(event.id), log_index=append_event(db, event))


def _window_time(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _window(start: int, end: int) -> dict[str, str]:
    return {"start": _window_time(start), "end": _window_time(end)}


def _record_window(db: Session, closed: ClosedWindow, now: datetime) -> RecordedEvent:
    key = closed.key
    return record_event(
        db,
        action=AGGREGATED_EVENTS[Action(key.action)],
        result=key.result,
        actor_id=key.actor_id,
        case_id=key.case_id,
        source=key.source,
        detail={**key.scope, "window": _window(closed.start, closed.end), "count": closed.count},
        now=now,
    )


def record_aggregated_event(
    db: Session,
    *,
    action: Action,
    window: int,
    now: datetime,
    result: str = RESULT_SUCCESS,
    actor_id: str | None = None,
    case_id: str | None = None,
    source: str | None = None,
    per_source: bool = True,
    scope: dict[str, Any] | None = None,
    detail: dict[str, Any] | None = None,
) -> RecordedEvent | None:
    """Count one event of an action in AGGREGATED_EVENTS; returns its own leaf, or None when it
    was only counted.

    Events are counted per (action, result, actor, case, source, `scope`) and `window` seconds;
    `per_source=False` counts every address together (the key then stays bounded however many
    addresses a flood comes from; the first event's leaf still names its own source). The first
    event of a window becomes a leaf at once with its `detail`; the window's total becomes one
    leaf of the aggregate action when the window has closed (auditlog.aggregate).
    """
    if action not in AGGREGATED_EVENTS:
        raise ValueError(f"{action} is not an aggregated event")
    scope = scope or {}
    key = AggregateKey(
        action=str(action), result=result, actor_id=actor_id, case_id=case_id,
        source=source if per_source else None, scope=scope,
    )
    counted = count_event(db, key, now=now, window=window)
    if counted.closed is not None:
        _record_window(db, counted.closed, now)
    if not counted.first:
        return None
    recorded = record_event(
        db, action=action, result=result, actor_id=actor_id, case_id=case_id, source=source,
        detail={**scope, **(detail or {}), "window": _window(counted.start, counted.end)},
        now=now,
    )
    # Once per key and window: other keys' closed windows, so a flood that stopped still gets
    # its count into the log when anyone else's window opens.
    for closed in take_closed_windows(db, now=now, limit=SWEEP_BATCH).closed:
        _record_window(db, closed, now)
    return recorded


def flush_closed_windows(db: Session, *, now: datetime, batch: int = 500) -> int:
    """Write the leaf of every closed window still counted (e.g. from `casevault-server gc`);
    commits per batch and returns how many leaves it wrote."""
    written = 0
    while True:
        swept = take_closed_windows(db, now=now, limit=batch)
        for window in swept.closed:
            _record_window(db, window, now)
        db.commit()
        written += len(swept.closed)
        if not swept.removed:
            return written
