"""Completing an upload: the signed manifest is checked against the parts, their hash is taken
without copying them, and the version becomes visible with its audit event in one transaction."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from vault.db.base import utcnow
from vault.db.models import User
from vault.db.models.cases import ROLE_EDITOR, Case
from vault.db.models.files import FileRow, FileVersion, FileVersionPart
from vault.db.models.uploads import UploadPart, UploadSession
from vault.errors import Conflict, InvalidRequest, StorageDamaged
from vault.protocol.encoding import b64d
from vault.protocol.events import Action
from vault.protocol.membership import verify_manifest
from vault.protocol.records import RecordError
from vault.services.case_access import (
    InvalidRecord,
    check_opaque,
    load_state,
    require_member,
    signed_text,
)
from vault.services.events import record_event
from vault.services.files import StoredPart, file_row
from vault.services.membership_head import lock_head, require_head
from vault.services.uploads.sessions import (
    UploadNotFound,
    VersionConflict,
    get_upload,
    upload_parts,
)
from vault.storage import BlobStore, BlobStoreError


class UploadIncomplete(Conflict):
    code = "upload_incomplete"
    title = "Parts are missing"


class ManifestMismatch(InvalidRequest):
    code = "manifest_mismatch"
    title = "The manifest does not match the uploaded data"


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
    # Before the generation check: an honest client that lost a race with a membership change
    # (often a new generation) gets the one answer it can act on, reload and sign again.
    require_head(state, m.membership_seq, "manifest")
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
    lock_head(db, checked.case_id, checked.manifest.membership_seq, "manifest")
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
