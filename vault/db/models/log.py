"""Tables of the Merkle audit log.

`log_state` is one row (id 1): the tree size and its compact range (the roots of the perfect
subtrees on the right edge), locked by every append so appends are serialised across processes.
`log_leaves` holds each entry's exact bytes and leaf hash; `log_nodes` every perfect subtree of
level >= 1, written once when it completes, so proofs are O(log n) look-ups. `log_checkpoints`
keeps each checkpoint the server signed, so the log can check itself against what it published.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, LargeBinary, SmallInteger, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from vault.db.base import Base, UTCDateTime

LOG_STATE_ID = 1


class LogState(Base):
    __tablename__ = "log_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    size: Mapped[int] = mapped_column(BigInteger)
    # Concatenated 32-byte hashes, largest subtree first (one per set bit of size).
    frontier: Mapped[bytes] = mapped_column(LargeBinary)
    # Index of the first format-2 leaf, fixed by migration 0005; every leaf from it on is
    # format 2 (SPEC.md, "Audit leaf format 2"). Clients pin it beside the log key.
    first_v2: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class LogLeaf(Base):
    __tablename__ = "log_leaves"
    __table_args__ = (
        Index("ix_log_leaves_case_id_leaf_index", "case_id", "leaf_index"),
        Index("ix_log_leaves_actor_id_leaf_index", "actor_id", "leaf_index"),
    )

    leaf_index: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    # The audit_events row this leaf was made from (no foreign key: the log outlives rows).
    event_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    entry: Mapped[bytes] = mapped_column(LargeBinary)
    # Format 2: the body the skeleton `entry` names by hash, shown to members only. Null for
    # format-1 leaves, whose entry is the whole record.
    body: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary)
    # Copied from the event to answer "entries of this case" and "my events" by index.
    case_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    actor_id: Mapped[str | None] = mapped_column(String(32), nullable=True)


class LogNode(Base):
    __tablename__ = "log_nodes"

    level: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    index: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary)


class LogCheckpoint(Base):
    __tablename__ = "log_checkpoints"

    tree_size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary)
    note: Mapped[str] = mapped_column(Text)
    signed_at: Mapped[datetime] = mapped_column(UTCDateTime())
