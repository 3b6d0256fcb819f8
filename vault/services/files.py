"""Files: listing, download and signed deletion of the versions uploads made visible."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import String, select, type_coerce, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session

from vault.config import Settings
from vault.db.base import utcnow
from vault.db.models import User
from vault.db.models.cases import ROLE_EDITOR
from vault.db.models.files import FileRow, FileVersion, FileVersionPart
from vault.errors import CaseOnHold, NotFound, StorageDamaged
from vault.protocol.cursor import format_cursor
from vault.protocol.events import Action
from vault.protocol.ids import is_valid_id
from vault.protocol.membership import verify_tombstone
from vault.protocol.records import RecordError
from vault.services.case_access import (
    InvalidRecord,
    load_state,
    require_member,
    signed_text,
)
from vault.services.events import record_aggregated_event, record_event
from vault.services.membership_head import lock_head, require_head
from vault.storage import BlobNotFound, BlobStore, BlobStoreError, InvalidRange

log = logging.getLogger("vault.files")

# The listing's aggregation window when the caller passes none: the setting's default.
LISTING_WINDOW: int = Settings.model_fields["event_aggregation_window"].default


class FileNotFound(NotFound):
    code = "not_found"
    title = "File not found"


class FileDeleted(NotFound):
    code = "file_deleted"
    title = "This file was deleted"


@dataclass(frozen=True)
class DeletedFile:
    row: FileRow
    log_index: int  # the deletion event's leaf: the deleter's receipt


def file_row(db: Session, case_id: str, file_id: str) -> FileRow | None:
    return db.get(FileRow, (case_id, file_id))


# ---------------------------------------------------------------- listing, download, delete


# Only what a listing shows, in this order (the route unpacks rows by position): no per-row ORM
# objects, no columns it does not need (blob keys). Tombstones are read apart, for the few
# tombstoned files of a page, rather than by joining `files` onto every version.
_LISTED = (
    FileVersion.file_id,
    FileVersion.version,
    FileVersion.blob_size,
    FileVersion.uploader_id,
    FileVersion.created_at,
    FileVersion.manifest_body,
    FileVersion.manifest_sig,
    FileVersion.encrypted_metadata,
    FileVersion.wrapped_key,
    FileVersion.deleted,
)
# SQLite keeps times as text: the stored text is read as it is and rewritten by `_sqlite_time`,
# which costs far less per row than the column type's parse into a datetime.
_LISTED_SQLITE = tuple(
    type_coerce(c, String).label("created_at") if c is FileVersion.created_at else c
    for c in _LISTED
)
# The text SQLAlchemy stores for a UTC time on SQLite: "YYYY-MM-DD HH:MM:SS.ffffff".
_STORED_TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}")
_SQLITE_DATETIME = sqlite.DATETIME().result_processor(sqlite.dialect(), None)


def _sqlite_time(text: str) -> str | datetime:
    """A stored time as Pydantic writes it: seconds, microseconds only when not zero, then Z.
    Any other stored form is parsed as the column type would parse it."""
    if _STORED_TIME.fullmatch(text):
        if text.endswith("000000"):
            return f"{text[:10]}T{text[11:19]}Z"
        return f"{text[:10]}T{text[11:]}Z"
    return _SQLITE_DATETIME(text).replace(tzinfo=UTC)


def _same(value: Any) -> Any:
    return value


@dataclass(frozen=True)
class Listing:
    """Versions as rows of the `_LISTED` columns; `created_at(value)` gives what goes into the
    JSON for a row's created_at; `tombstones` maps each tombstoned file listed to its record."""

    rows: list[Any]
    created_at: Callable[[Any], Any]
    tombstones: dict[str, dict[str, str]]


def _listing_query(columns: Any, case_id: str, limit: int | None, after: tuple[str, int] | None):
    query = (
        select(*columns)
        .where(FileVersion.case_id == case_id)
        .order_by(FileVersion.file_id, FileVersion.version)
    )
    if after is not None:
        file_id, version = after
        query = query.where(
            (FileVersion.file_id > file_id)
            | ((FileVersion.file_id == file_id) & (FileVersion.version > version))
        )
    if limit is not None:
        query = query.limit(limit)
    return query


def _select_listing(
    db: Session, case_id: str, limit: int | None, after: tuple[str, int] | None
) -> Listing:
    # Core statements on the session's connection: plain rows, no ORM loading step.
    conn = db.connection()
    on_sqlite = conn.dialect.name == "sqlite"
    columns = _LISTED_SQLITE if on_sqlite else _LISTED
    rows = conn.execute(_listing_query(columns, case_id, limit, after)).all()
    tombstones: dict[str, dict[str, str]] = {}
    if rows:
        # Only the files of this page (ordered by file id, so between its first and last).
        marked = conn.execute(
            select(FileRow.file_id, FileRow.tombstone_body, FileRow.tombstone_sig).where(
                FileRow.case_id == case_id,
                FileRow.file_id.between(rows[0].file_id, rows[-1].file_id),
                FileRow.tombstone_body.is_not(None),
            )
        )
        tombstones = {
            file_id: {"body": body, "sig": sig} for file_id, body, sig in marked if body and sig
        }
    return Listing(rows, _sqlite_time if on_sqlite else _same, tombstones)


def list_files(
    db: Session,
    *,
    user: User,
    case_id: str,
    source: str | None = None,
    now: datetime | None = None,
    limit: int | None = None,
    after: tuple[str, int] | None = None,
    aggregation_window: int = LISTING_WINDOW,
) -> Listing:
    """Versions of a case ordered by file id and version; `after` = (file_id, version) and
    `limit` page through a large case.

    A listing is an aggregated event (T30): the first listing of a (user, case, window) is a
    leaf of its own, the window's count one more leaf once it has closed. Listings return no
    receipt (no log index), so nothing the client keeps depends on a leaf per listing."""
    require_member(db, case_id, user.id)
    listing = _select_listing(db, case_id, limit, after)
    detail: dict[str, Any] = {"versions": len(listing.rows)}
    if limit is not None or after is not None:
        # Written as the API's cursor is, so a page in the log reads like the request.
        detail["after"] = format_cursor(*after) if after else None
    # Counted per user and case, not per address: a session moving between addresses must not
    # open more windows, and the first listing's leaf still names its source.
    record_aggregated_event(
        db,
        action=Action.FILE_LISTED,
        actor_id=user.id,
        case_id=case_id,
        source=source,
        per_source=False,
        detail=detail,
        window=aggregation_window,
        now=now or utcnow(),
    )
    db.commit()
    return listing


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
) -> int:
    """Record the access before the first byte leaves the server; returns the event's leaf
    index (the downloader's receipt)."""
    recorded = record_event(
        db,
        action=Action.FILE_DOWNLOADED,
        actor_id=user.id,
        case_id=row.case_id,
        file_id=row.file_id,
        source=source,
        detail={"version": row.version, **(detail or {})},
        now=now or utcnow(),
    )
    db.commit()
    return recorded.log_index


@dataclass(frozen=True)
class StoredPart:
    """One blob of a version, in order: its key and the byte count its row records."""

    key: str
    size: int


def version_parts(db: Session, row: FileVersion) -> list[StoredPart]:
    """The version's blobs in order; a version without part rows is its one blob."""
    listed = db.execute(
        select(FileVersionPart.blob_key, FileVersionPart.size)
        .where(
            FileVersionPart.case_id == row.case_id,
            FileVersionPart.file_id == row.file_id,
            FileVersionPart.version == row.version,
        )
        .order_by(FileVersionPart.part_number)
    ).all()
    if not listed:
        return [StoredPart(key=row.blob_key, size=row.blob_size)]
    return [StoredPart(key=key, size=size) for key, size in listed]


def _damaged(key: str) -> StorageDamaged:
    log.error("stored blob %s is missing or not the size its row records", key)
    return StorageDamaged()


def stream_parts(
    store: BlobStore, parts: list[StoredPart], start: int, end: int
) -> Iterator[bytes]:
    """Bytes [start, end) of the blobs laid end to end.

    Every blob the range touches is checked before the first byte is sent: a missing one, or
    one whose size is not what its row records, is damage on the server's side, a clear
    `blob_damaged` rather than a response cut short or a bare 500.
    """
    pieces: list[tuple[str, int, int]] = []
    offset = 0
    for part in parts:
        lo, hi = max(start, offset), min(end, offset + part.size)
        if lo < hi:
            pieces.append((part.key, lo - offset, hi - offset))
            try:
                actual = store.size(part.key)
            except BlobStoreError as exc:
                raise _damaged(part.key) from exc
            # One blob is also served when longer than recorded (its bytes are checked by the
            # client's hash); in a list of parts every offset after it would be wrong.
            if actual < part.size or (len(parts) > 1 and actual != part.size):
                raise _damaged(part.key)
        offset += part.size
    if offset < end:
        raise _damaged(parts[-1].key)
    return _read_pieces(store, pieces)


def _read_pieces(store: BlobStore, pieces: list[tuple[str, int, int]]) -> Iterator[bytes]:
    for key, lo, hi in pieces:
        try:
            yield from store.read(key, lo, hi)
        except (BlobNotFound, InvalidRange) as exc:
            # Gone or cut after the check: the response is already under way, so end it.
            raise _damaged(key) from exc


def delete_file(
    db: Session,
    *,
    user: User,
    case_id: str,
    file_id: str,
    tombstone: Any,
    source: str | None = None,
    now: datetime | None = None,
) -> DeletedFile:
    """Mark every version of a file deleted under a tombstone signed by an editor or owner,
    unless a legal hold stands."""
    now = now or utcnow()
    require_member(db, case_id, user.id, min_role=ROLE_EDITOR)
    row = file_row(db, case_id, file_id) if is_valid_id(file_id) else None
    if row is None:
        raise FileNotFound()
    if row.deleted_at is not None:
        raise FileDeleted()
    state, identities = load_state(db, case_id)
    # Before the tombstone is read: whatever position it names, a hold at the head refuses it
    # (SPEC 4.2.1). A hold appended after this check moves the head, so lock_head refuses then.
    if state.hold is not None:
        raise CaseOnHold(f"the case is under a legal hold (membership position {state.hold.seq})")
    try:
        tomb = verify_tombstone(tombstone, state, identities)
    except RecordError as exc:
        raise InvalidRecord(str(exc)) from exc
    if tomb.file_id != file_id or tomb.deleter != user.id:
        raise InvalidRecord("the tombstone must be signed by you for this file")
    require_head(state, tomb.membership_seq, "tombstone")
    lock_head(db, case_id, tomb.membership_seq, "tombstone")
    row.deleted_at = now
    row.deleted_by = user.id
    row.tombstone_body = tomb.signed["body"]
    row.tombstone_sig = tomb.signed["sig"]
    db.execute(
        update(FileVersion)
        .where(FileVersion.case_id == case_id, FileVersion.file_id == file_id)
        .values(deleted=True)
    )
    recorded = record_event(
        db,
        action=Action.FILE_DELETED,
        actor_id=user.id,
        case_id=case_id,
        file_id=file_id,
        source=source,
        signed_record=signed_text(tomb.signed),
        now=now,
    )
    db.commit()
    return DeletedFile(row=row, log_index=recorded.log_index)
