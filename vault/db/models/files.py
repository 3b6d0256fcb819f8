"""Files and their versions: each version's signed manifest, the client's encrypted metadata and
wrapped key (opaque base64url text), and the blob or ordered part blobs that hold its bytes."""

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
