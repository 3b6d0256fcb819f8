"""Uploads: resumable sessions of parts and atomic completion by a signed manifest.

Blob first, then row: part blobs are written before the rows that name them, so a crash leaves
at worst an unreferenced blob for the garbage collector, never a row without its bytes. A
completed version keeps its part blobs, in order, as they are (each already written and
fsynced once): completion reads them to check the manifest's hash but never copies them.
Nothing here holds a whole part or file in memory.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from vault.config import Settings
from vault.db.base import utcnow
from vault.db.models import User
from vault.db.models.cases import (
    ROLE_EDITOR,
    Case,
    FileRow,
    FileVersion,
    FileVersionPart,
    UploadPart,
    UploadSession,
)
from vault.errors import (
    Conflict,
    InsufficientStorage,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    StorageDamaged,
)
from vault.protocol.encoding import b64d
from vault.protocol.events import Action
from vault.protocol.ids import is_valid_id, new_id
from vault.protocol.membership import verify_manifest
from vault.protocol.records import RecordError
from vault.services.cases import (
    InvalidRecord,
    check_opaque,
    load_state,
    require_member,
    signed_text,
)
from vault.services.events import record_event
from vault.services.files import FileDeleted, StoredPart, file_row
from vault.storage import BlobInfo, BlobStore, BlobStoreError

MAX_PARTS = 10_000


class UploadNotFound(NotFound):
    code = "not_found"
    title = "Upload not found"


class VersionConflict(Conflict):
    code = "version_conflict"
    title = "The version is not the next version of this file"


class UploadIncomplete(Conflict):
    code = "upload_incomplete"
    title = "Parts are missing"


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


class ManifestMismatch(InvalidRequest):
    code = "manifest_mismatch"
    title = "The manifest does not match the uploaded data"


# ---------------------------------------------------------------- upload sessions


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


# ---------------------------------------------------------------- completion


@dataclass(frozen=True)
class CompletedVersion:
    version: FileVersion
    log_index: int  # the upload event's leaf: the uploader's receipt


@dataclass(frozen=True)
class _Checked:
    upload_id: str
    case_id: str
    file_id: str
    version: int
    generation: int
    parts: list[StoredPart]
    # The server's own SHA-256 of a single part, taken as it arrived; None for several parts.
    single_sha256: str | None
    manifest: Any


def _check_completion(
    db: Session,
    *,
    user: User,
    case_id: str,
    upload_id: str,
    manifest: Any,
    encrypted_metadata: str,
    wrapped_key: str,
) -> _Checked:
    upload = get_upload(db, user=user, case_id=case_id, upload_id=upload_id)
    check_opaque(encrypted_metadata, "encrypted_metadata")
    check_opaque(wrapped_key, "wrapped_key")
    parts = upload_parts(db, upload_id)
    missing = sorted(set(range(upload.part_count)) - {p.part_number for p in parts})
    if missing:
        raise UploadIncomplete(f"{len(missing)} parts missing", missing=missing[:100])
    state, identities = load_state(db, case_id)
    try:
        m = verify_manifest(
            manifest,
            state,
            identities,
            case_id=case_id,
            file_id=upload.file_id,
            version=upload.version,
        )
    except RecordError as exc:
        raise InvalidRecord(str(exc)) from exc
    if m.uploader != user.id:
        raise InvalidRecord("the manifest must be signed by you")
    # New files use the newest key: after a removal the removed member cannot read them.
    if m.generation != state.generation:
        raise InvalidRecord("the manifest must use the current key generation")
    if m.blob_size != upload.total_size:
        raise ManifestMismatch("blob_size differs from the upload's size")
    if m.meta_hash != hashlib.sha256(b64d(encrypted_metadata)).hexdigest():
        raise ManifestMismatch("meta_hash does not match encrypted_metadata")
    if m.wrapped_key_hash != hashlib.sha256(b64d(wrapped_key)).hexdigest():
        raise ManifestMismatch("wrapped_key_hash does not match wrapped_key")
    if len(parts) == 1 and parts[0].sha256 != m.blob_sha256:
        raise ManifestMismatch("blob_sha256 does not match the uploaded data")
    if sum(p.size for p in parts) != upload.total_size:
        raise ManifestMismatch("the parts do not add up to the upload's size")
    return _Checked(
        upload_id=upload.id,
        case_id=case_id,
        file_id=upload.file_id,
        version=upload.version,
        generation=m.generation,
        parts=[StoredPart(key=p.blob_key, size=p.size) for p in parts],
        single_sha256=parts[0].sha256 if len(parts) == 1 else None,
        manifest=m,
    )


def _hash_parts(store: BlobStore, parts: list[StoredPart]) -> str:
    """SHA-256 (hex) of the parts laid end to end: one read, no copy and no write."""
    digest = hashlib.sha256()
    for part in parts:
        seen = 0
        try:
            for chunk in store.read(part.key):
                digest.update(chunk)
                seen += len(chunk)
        except BlobStoreError as exc:
            raise StorageDamaged() from exc
        if seen != part.size:
            raise StorageDamaged()
    return digest.hexdigest()


def complete_upload(
    db: Session,
    store: BlobStore,
    *,
    user: User,
    case_id: str,
    upload_id: str,
    manifest: Any,
    encrypted_metadata: str,
    wrapped_key: str,
    source: str | None = None,
    now: datetime | None = None,
) -> CompletedVersion:
    """Verify the manifest against the parts and make the version visible in one transaction.

    A refused completion keeps the upload and its parts, so a corrected manifest can complete it.
    """
    checked = _check_completion(
        db,
        user=user,
        case_id=case_id,
        upload_id=upload_id,
        manifest=manifest,
        encrypted_metadata=encrypted_metadata,
        wrapped_key=wrapped_key,
    )
    # End the read transaction: hashing a large file must not hold the database.
    db.rollback()
    m = checked.manifest
    # One part was hashed as it arrived; several are hashed here, in order, as one stream.
    whole = checked.single_sha256 or _hash_parts(store, checked.parts)
    if whole != m.blob_sha256:
        raise ManifestMismatch("blob_sha256 does not match the uploaded data")
    try:
        return _publish(
            db,
            user=user,
            checked=checked,
            encrypted_metadata=encrypted_metadata,
            wrapped_key=wrapped_key,
            source=source,
            now=now or utcnow(),
        )
    except BaseException:
        db.rollback()
        raise


def _publish(
    db: Session,
    *,
    user: User,
    checked: _Checked,
    encrypted_metadata: str,
    wrapped_key: str,
    source: str | None,
    now: datetime,
) -> CompletedVersion:
    # Re-check what may have changed while the parts were hashed.
    require_member(db, checked.case_id, user.id, min_role=ROLE_EDITOR)
    case = db.get(Case, checked.case_id)
    if case is None or case.generation != checked.generation:
        raise InvalidRecord("the case key changed during the upload; sign a new manifest")
    gone = db.execute(delete(UploadPart).where(UploadPart.upload_id == checked.upload_id))
    session_gone = db.execute(delete(UploadSession).where(UploadSession.id == checked.upload_id))
    if session_gone.rowcount != 1 or gone.rowcount != len(checked.parts):
        raise UploadNotFound()
    if checked.version == 1:
        if file_row(db, checked.case_id, checked.file_id) is not None:
            raise VersionConflict()
        db.add(
            FileRow(
                case_id=checked.case_id, file_id=checked.file_id, latest_version=1, created_at=now
            )
        )
    else:
        bumped = db.execute(
            update(FileRow)
            .where(
                FileRow.case_id == checked.case_id,
                FileRow.file_id == checked.file_id,
                FileRow.latest_version == checked.version - 1,
                FileRow.deleted_at.is_(None),
            )
            .values(latest_version=checked.version)
        )
        if bumped.rowcount != 1:
            raise VersionConflict()
    m = checked.manifest
    size = sum(p.size for p in checked.parts)
    version = FileVersion(
        case_id=checked.case_id,
        file_id=checked.file_id,
        version=checked.version,
        # The only blob, or the first of the parts listed in file_version_parts.
        blob_key=checked.parts[0].key,
        blob_size=size,
        blob_sha256=m.blob_sha256,
        generation=m.generation,
        uploader_id=user.id,
        manifest_body=m.signed["body"],
        manifest_sig=m.signed["sig"],
        encrypted_metadata=encrypted_metadata,
        wrapped_key=wrapped_key,
        created_at=now,
        deleted=False,
    )
    db.add(version)
    if len(checked.parts) > 1:
        db.flush()
        db.execute(
            insert(FileVersionPart),
            [
                {
                    "case_id": checked.case_id,
                    "file_id": checked.file_id,
                    "version": checked.version,
                    "part_number": number,
                    "blob_key": part.key,
                    "size": part.size,
                }
                for number, part in enumerate(checked.parts)
            ],
        )
    recorded = record_event(
        db,
        action=Action.FILE_UPLOADED,
        actor_id=user.id,
        case_id=checked.case_id,
        file_id=checked.file_id,
        source=source,
        detail={"version": checked.version, "size": size},
        signed_record=signed_text(m.signed),
        now=now,
    )
    try:
        db.commit()
    except IntegrityError as exc:
        raise VersionConflict() from exc
    return CompletedVersion(version=version, log_index=recorded.log_index)
