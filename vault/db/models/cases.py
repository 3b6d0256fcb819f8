"""Cases, the membership log and its current state, key grants.

Signed records are kept as the exact base64url text the client sent (`*_body`, `*_sig`), so they
can be handed back and put in the audit log byte for byte. The case info the client sealed is
opaque base64url text as well. File, version and upload tables are in `files` and `uploads`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from vault.db.base import Base, UTCDateTime

ROLE_OWNER = "owner"
ROLE_EDITOR = "editor"
ROLE_VIEWER = "viewer"


class Case(Base):
    __tablename__ = "cases"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_by: Mapped[str] = mapped_column(String(32), ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Name and description sealed under the case key by the client.
    encrypted_info: Mapped[str] = mapped_column(Text)
    # Head of the membership log: sequence number and record hash of the last entry.
    membership_seq: Mapped[int] = mapped_column(Integer)
    membership_head: Mapped[str] = mapped_column(String(64))
    generation: Mapped[int] = mapped_column(Integer)


class CaseMember(Base):
    """The current membership state, derived from the log in the same transaction as each entry."""

    __tablename__ = "case_members"
    __table_args__ = (Index("ix_case_members_user_id", "user_id"),)

    case_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(String(32), ForeignKey("users.id"), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    fingerprint: Mapped[str] = mapped_column(String(64))
    added_at: Mapped[datetime] = mapped_column(UTCDateTime())


class MembershipEntryRow(Base):
    __tablename__ = "membership_entries"

    case_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    entry_hash: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(16))
    author_id: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[str] = mapped_column(String(32))
    body: Mapped[str] = mapped_column(Text)
    sig: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class KeyGrant(Base):
    __tablename__ = "key_grants"
    __table_args__ = (Index("ix_key_grants_member_id", "member_id"),)

    case_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True
    )
    generation: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    member_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    granter_id: Mapped[str] = mapped_column(String(32))
    body: Mapped[str] = mapped_column(Text)
    sig: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
