"""The one recorder of audit events. Every service calls `record_event`.

It adds the row to the caller's transaction and flushes it; the caller commits. For failures,
commit before raising the error, or the rollback erases the evidence.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from vault.db.base import utcnow
from vault.db.models import AuditEvent
from vault.db.models.events import RESULT_FAILURE, RESULT_SUCCESS
from vault.protocol.encoding import canonical_json
from vault.protocol.logentry import SOURCE_NONCE_BYTES
from vault.services.auditlog import append_event

__all__ = ["RESULT_FAILURE", "RESULT_SUCCESS", "RecordedEvent", "record_event"]

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
    if not _ACTION.match(action):
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
