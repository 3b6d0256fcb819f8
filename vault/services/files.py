"""Files: listing, download and signed deletion of the versions uploads made visible."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from vault.db.base import utcnow
from vault.db.models import User
from vault.db.models_cases import (
    ROLE_EDITOR,
    FileRow,
    FileVersion,
)
from vault.errors import NotFound, StorageDamaged
from vault.protocol.ids import is_valid_id
from vault.protocol.membership import verify_tombstone
from vault.protocol.records import RecordError
from vault.services.cases import (
    InvalidRecord,
    load_state,
    require_member,
    signed_text,
)
from vault.services.events import record_event
from vault.storage import BlobNotFound, BlobStore, InvalidRange

log = logging.getLogger("vault.files")


class FileNotFound(NotFound):
    code = "not_found"
    title = "File not found"


class FileDeleted(NotFound):
    code = "file_deleted"
    title = "This file was deleted"


def file_row(db: Session, case_id: str, file_id: str) -> FileRow | None:
    return db.get(FileRow, (case_id, file_id))


# ---------------------------------------------------------------- listing, download, delete


def list_files(
    db: Session, *, user: User, case_id: str, source: str | None = None, now: datetime | None = None
) -> list[tuple[FileVersion, FileRow]]:
    require_member(db, case_id, user.id)
    rows = list(
        db.execute(
            select(FileVersion, FileRow)
            .join(
                FileRow,
                (FileRow.case_id == FileVersion.case_id) & (FileRow.file_id == FileVersion.file_id),
            )
            .where(FileVersion.case_id == case_id)
            .order_by(FileVersion.file_id, FileVersion.version)
        )
    )
    record_event(
        db,
        action="file:list:read",
        actor_id=user.id,
        case_id=case_id,
        source=source,
        detail={"versions": len(rows)},
        now=now or utcnow(),
    )
    db.commit()
    return rows


def find_version(
    db: Session, *, user: User, case_id: str, file_id: str, version: int
) -> FileVersion:
    """A downloadable version of a file in a case the caller is a member of."""
    require_member(db, case_id, user.id)
    row = db.get(FileVersion, (case_id, file_id, version)) if is_valid_id(file_id) else None
    if row is None:
        raise FileNotFound()
    if row.deleted:
        raise FileDeleted()
    return row


def log_download(
    db: Session,
    *,
    user: User,
    row: FileVersion,
    source: str | None = None,
    detail: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> None:
    """Record the access before the first byte leaves the server."""
    record_event(
        db,
        action="file:version:downloaded",
        actor_id=user.id,
        case_id=row.case_id,
        file_id=row.file_id,
        source=source,
        detail={"version": row.version, **(detail or {})},
        now=now or utcnow(),
    )
    db.commit()


def stream_blob(store: BlobStore, key: str, start: int, end: int) -> Iterator[bytes]:
    """The blob's bytes [start, end). The range was checked against the row, so a missing or
    shorter file is damage on the server's side: a clear `blob_damaged`, not a bare 500."""
    try:
        return store.read(key, start, end)
    except (BlobNotFound, InvalidRange) as exc:
        log.error("stored blob %s is missing or shorter than recorded", key)
        raise StorageDamaged() from exc


def delete_file(
    db: Session,
    *,
    user: User,
    case_id: str,
    file_id: str,
    tombstone: Any,
    source: str | None = None,
    now: datetime | None = None,
) -> FileRow:
    """Mark every version of a file deleted under a tombstone signed by an editor or owner."""
    now = now or utcnow()
    require_member(db, case_id, user.id, min_role=ROLE_EDITOR)
    row = file_row(db, case_id, file_id) if is_valid_id(file_id) else None
    if row is None:
        raise FileNotFound()
    if row.deleted_at is not None:
        raise FileDeleted()
    state, identities = load_state(db, case_id)
    try:
        tomb = verify_tombstone(tombstone, state, identities)
    except RecordError as exc:
        raise InvalidRecord(str(exc)) from exc
    if tomb.file_id != file_id or tomb.deleter != user.id:
        raise InvalidRecord("the tombstone must be signed by you for this file")
    row.deleted_at = now
    row.deleted_by = user.id
    row.tombstone_body = tomb.signed["body"]
    row.tombstone_sig = tomb.signed["sig"]
    db.execute(
        update(FileVersion)
        .where(FileVersion.case_id == case_id, FileVersion.file_id == file_id)
        .values(deleted=True)
    )
    record_event(
        db,
        action="file:file:deleted",
        actor_id=user.id,
        case_id=case_id,
        file_id=file_id,
        source=source,
        signed_record=signed_text(tomb.signed),
        now=now,
    )
    db.commit()
    return row
