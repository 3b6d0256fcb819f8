"""The audit events table: every security-relevant event, in the order it was recorded.

Rows are append-only; `id` is the order of record and feeds the Merkle log.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from vault.db.base import Base, BigIntPK, UTCDateTime

RESULT_SUCCESS = "success"
RESULT_FAILURE = "failure"


class AuditEvent(Base):
    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_case_id", "case_id"),
        Index("ix_audit_events_actor_id", "actor_id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    time: Mapped[datetime] = mapped_column(UTCDateTime())
    # No foreign key: the record of an event outlives whatever it refers to.
    actor_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    action: Mapped[str] = mapped_column(String(64))
    case_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    file_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    source: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The fresh 16-byte nonce of the source commitment in a format-2 leaf; revealed only to
    # the event's actor, so no one else can test a guessed address against the commitment.
    source_nonce: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    result: Mapped[str] = mapped_column(String(16))
    # Canonical JSON text of small, non-secret details.
    detail: Mapped[str] = mapped_column(Text, default="{}")
    # The client-signed record ({"body","sig"} canonical JSON) when the action carries one.
    signed_record: Mapped[str | None] = mapped_column(Text, nullable=True)
