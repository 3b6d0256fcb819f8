"""Cases, the membership log and its current state, key grants, files, versions, uploads.

Signed records are kept as the exact base64url text the client sent (`*_body`, `*_sig`), so they
can be handed back and put in the audit log byte for byte. Encrypted blobs of the client (case
info, file metadata, wrapped file keys) are opaque base64url text as well.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
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


class FileRow(Base):
    __tablename__ = "files"

    case_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True
    )
    file_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    latest_version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    deleted_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    tombstone_body: Mapped[str | None] = mapped_column(Text, nullable=True)
    tombstone_sig: Mapped[str | None] = mapped_column(Text, nullable=True)


class FileVersion(Base):
    __tablename__ = "file_versions"
    __table_args__ = (
        ForeignKeyConstraint(
            ["case_id", "file_id"],
            ["files.case_id", "files.file_id"],
            name="fk_file_versions_case_id_files",
            ondelete="CASCADE",
        ),
        UniqueConstraint("blob_key", name="uq_file_versions_blob_key"),
        Index("ix_file_versions_uploader_id", "uploader_id"),
    )

    case_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    file_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    blob_key: Mapped[str] = mapped_column(String(32))
    blob_size: Mapped[int] = mapped_column(BigInteger)
    blob_sha256: Mapped[str] = mapped_column(String(64))
    generation: Mapped[int] = mapped_column(Integer)
    uploader_id: Mapped[str] = mapped_column(String(32), ForeignKey("users.id"))
    manifest_body: Mapped[str] = mapped_column(Text)
    manifest_sig: Mapped[str] = mapped_column(Text)
    encrypted_metadata: Mapped[str] = mapped_column(Text)
    wrapped_key: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)


class FileVersionPart(Base):
    """The ordered part blobs of a version uploaded in several parts, served back to back.

    A version with no rows here is one blob, `FileVersion.blob_key` (every single-part upload,
    and every version completed before parts were kept). For a version listed here,
    `FileVersion.blob_key` is its first part, and these rows name all of them in order.
    """

    __tablename__ = "file_version_parts"
    __table_args__ = (
        ForeignKeyConstraint(
            ["case_id", "file_id", "version"],
            ["file_versions.case_id", "file_versions.file_id", "file_versions.version"],
            name="fk_file_version_parts_version",
            ondelete="CASCADE",
        ),
        UniqueConstraint("blob_key", name="uq_file_version_parts_blob_key"),
    )

    case_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    file_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    part_number: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    blob_key: Mapped[str] = mapped_column(String(32))
    size: Mapped[int] = mapped_column(BigInteger)


class UploadSession(Base):
    __tablename__ = "upload_sessions"
    __table_args__ = (
        Index("ix_upload_sessions_user_id", "user_id"),
        Index("ix_upload_sessions_updated_at", "updated_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    case_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("cases.id", ondelete="CASCADE"), index=True
    )
    file_id: Mapped[str] = mapped_column(String(32))
    version: Mapped[int] = mapped_column(Integer)
    user_id: Mapped[str] = mapped_column(String(32), ForeignKey("users.id"))
    total_size: Mapped[int] = mapped_column(BigInteger)
    part_size: Mapped[int] = mapped_column(BigInteger)
    part_count: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class UploadPart(Base):
    __tablename__ = "upload_parts"
    __table_args__ = (UniqueConstraint("blob_key", name="uq_upload_parts_blob_key"),)

    upload_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("upload_sessions.id", ondelete="CASCADE"), primary_key=True
    )
    part_number: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    blob_key: Mapped[str] = mapped_column(String(32))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
