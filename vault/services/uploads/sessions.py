"""Upload sessions and their parts: opening an upload within the size limits and the quota,
storing parts in any order (blob first, then row), reporting what is held, aborting."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from vault.config import Settings
from vault.db.base import utcnow
from vault.db.models import User
from vault.db.models.cases import ROLE_EDITOR
from vault.db.models.files import FileVersion
from vault.db.models.uploads import UploadPart, UploadSession
from vault.errors import (
    Conflict,
    InsufficientStorage,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
)
from vault.protocol.ids import is_valid_id, new_id
from vault.services.case_access import require_member
from vault.services.files import FileDeleted, file_row
from vault.storage import BlobInfo, BlobStore

MAX_PARTS = 10_000


class UploadNotFound(NotFound):
    code = "not_found"
    title = "Upload not found"


class VersionConflict(Conflict):
    code = "version_conflict"
    title = "The version is not the next version of this file"


class PartTooLarge(PayloadTooLarge):
    code = "part_too_large"
    title = "Part size above the server's limit"


class FileTooLarge(PayloadTooLarge):
    code = "file_too_large"
    title = "File size above the server's limit"


class QuotaExceeded(InsufficientStorage):
    code = "quota_exceeded"
    title = "Your storage quota would be exceeded"


class PartMismatch(InvalidRequest):
    code = "part_mismatch"
    title = "The part does not match its declared size or hash"


def used_bytes(db: Session, user_id: str) -> int:
    """Stored versions this user uploaded plus the declared size of their open uploads."""
    stored = db.scalar(
        select(func.coalesce(func.sum(FileVersion.blob_size), 0)).where(
            FileVersion.uploader_id == user_id
        )
    )
    pending = db.scalar(
        select(func.coalesce(func.sum(UploadSession.total_size), 0)).where(
            UploadSession.user_id == user_id
        )
    )
    return int(stored or 0) + int(pending or 0)


def create_upload(
    db: Session,
    settings: Settings,
    *,
    user: User,
    case_id: str,
    file_id: str,
    version: int,
    total_size: int,
    part_size: int,
    now: datetime | None = None,
) -> UploadSession:
    now = now or utcnow()
    require_member(db, case_id, user.id, min_role=ROLE_EDITOR)
    if not is_valid_id(file_id):
        raise InvalidRequest("file_id is 32 lowercase hex digits")
    if part_size > settings.max_part_size:
        raise PartTooLarge(f"part_size is at most {settings.max_part_size} bytes")
    if total_size > settings.max_file_size:
        raise FileTooLarge(f"a file is at most {settings.max_file_size} bytes")
    if part_size < 1 or total_size < 1:
        raise InvalidRequest("total_size and part_size are positive")
    part_count = -(-total_size // part_size)
    if part_count > MAX_PARTS:
        raise InvalidRequest(f"at most {MAX_PARTS} parts; use larger parts")
    row = file_row(db, case_id, file_id)
    if row is not None and row.deleted_at is not None:
        raise FileDeleted()
    expected = (row.latest_version if row else 0) + 1
    if version != expected:
        raise VersionConflict(f"the next version of this file is {expected}", expected=expected)
    if used_bytes(db, user.id) + total_size > settings.user_quota:
        raise QuotaExceeded(f"your quota is {settings.user_quota} bytes")
    upload = UploadSession(
        id=new_id(),
        case_id=case_id,
        file_id=file_id,
        version=version,
        user_id=user.id,
        total_size=total_size,
        part_size=part_size,
        part_count=part_count,
        created_at=now,
        updated_at=now,
    )
    db.add(upload)
    db.commit()
    return upload


def get_upload(db: Session, *, user: User, case_id: str, upload_id: str) -> UploadSession:
    """An upload of the caller in a case where the caller may still upload."""
    require_member(db, case_id, user.id, min_role=ROLE_EDITOR)
    upload = db.get(UploadSession, upload_id) if is_valid_id(upload_id) else None
    if upload is None or upload.case_id != case_id or upload.user_id != user.id:
        raise UploadNotFound()
    return upload


def upload_parts(db: Session, upload_id: str) -> list[UploadPart]:
    return list(
        db.scalars(
            select(UploadPart)
            .where(UploadPart.upload_id == upload_id)
            .order_by(UploadPart.part_number)
        )
    )


def expected_part_size(upload: UploadSession, part_number: int) -> int:
    if not 0 <= part_number < upload.part_count:
        raise InvalidRequest(f"part numbers run from 0 to {upload.part_count - 1}")
    if part_number < upload.part_count - 1:
        return upload.part_size
    return upload.total_size - upload.part_size * (upload.part_count - 1)


def parse_sha256_hex(value: str | None) -> bytes:
    if value is None or len(value) != 64 or value != value.lower():
        raise InvalidRequest("X-Part-SHA256 must be 64 lowercase hex digits")
    try:
        return bytes.fromhex(value)
    except ValueError as exc:
        raise InvalidRequest("X-Part-SHA256 must be 64 lowercase hex digits") from exc


def check_received_part(info: BlobInfo, *, expected_size: int, expected_sha256: bytes) -> None:
    if info.size != expected_size:
        raise PartMismatch(f"expected {expected_size} bytes, received {info.size}")
    if info.sha256 != expected_sha256:
        raise PartMismatch("the part's SHA-256 does not match X-Part-SHA256")


def record_part(
    db: Session,
    store: BlobStore,
    *,
    user: User,
    case_id: str,
    upload_id: str,
    part_number: int,
    info: BlobInfo,
    now: datetime | None = None,
) -> UploadPart:
    """Attach a stored part blob to its upload; a re-sent identical part changes nothing."""
    now = now or utcnow()
    stale_key: str | None = info.key
    try:
        upload = get_upload(db, user=user, case_id=case_id, upload_id=upload_id)
        existing = db.get(UploadPart, (upload_id, part_number))
        digest = info.sha256.hex()
        if existing is not None and existing.sha256 == digest and store.exists(existing.blob_key):
            part = existing
        elif existing is not None:
            # A part sent again with other bytes replaces the old one until completion, and so
            # does the same part when the stored copy was lost: re-sending repairs it.
            stale_key, existing.blob_key = existing.blob_key, info.key
            existing.size, existing.sha256, existing.created_at = info.size, digest, now
            part = existing
        else:
            part = UploadPart(
                upload_id=upload_id,
                part_number=part_number,
                blob_key=info.key,
                size=info.size,
                sha256=digest,
                created_at=now,
            )
            db.add(part)
            stale_key = None
        upload.updated_at = now
        try:
            db.commit()
        except IntegrityError:
            # The same part arrived twice at once over two connections: keep the first.
            db.rollback()
            stale_key = info.key
            part = db.get(UploadPart, (upload_id, part_number))
            if part is None:
                raise
        return part
    except BaseException:
        db.rollback()
        store.delete(info.key)
        stale_key = None
        raise
    finally:
        if stale_key is not None:
            store.delete(stale_key)


def abort_upload(
    db: Session, store: BlobStore, *, user: User, case_id: str, upload_id: str
) -> None:
    upload = get_upload(db, user=user, case_id=case_id, upload_id=upload_id)
    keys = [p.blob_key for p in upload_parts(db, upload_id)]
    db.execute(delete(UploadPart).where(UploadPart.upload_id == upload_id))
    db.delete(upload)
    db.commit()
    for key in keys:
        store.delete(key)
