"""Open aggregation windows of repeated events (refused attempts, listings).

One row per aggregation key: the window it is counting and how many events fell in it. The row
is the shared state of every server process, updated with one atomic upsert per event, so the
count is exact under concurrency; the window's total becomes one audit leaf when it closes.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from vault.db.base import Base


class EventAggregate(Base):
    __tablename__ = "event_aggregates"
    __table_args__ = (Index("ix_event_aggregates_window_end", "window_end"),)

    # SHA-256 (hex) of what the events of this row have in common; see auditlog.aggregate.
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    # The individual event's action; the window's leaf uses its aggregate action.
    action: Mapped[str] = mapped_column(String(64))
    result: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    case_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    source: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Canonical JSON of the fixed part of the detail (e.g. which limit refused).
    scope: Mapped[str] = mapped_column(Text)
    # Unix seconds, [window_start, window_end).
    window_start: Mapped[int] = mapped_column(BigInteger)
    window_end: Mapped[int] = mapped_column(BigInteger)
    # Events of the window, the one logged individually included.
    count: Mapped[int] = mapped_column(BigInteger)
