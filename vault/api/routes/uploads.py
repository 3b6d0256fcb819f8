"""Routes: resumable uploads in parts, and their completion by a signed manifest.

Part bodies are streamed from the connection to the blob store in bounded batches, never held
whole in memory.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response, status
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from vault.api.bounds import PartNumberPath, SizeField, VersionField
from vault.api.deps import (
    BlobStoreDep,
    ClientAddress,
    ClockDep,
    CurrentUser,
    DbSession,
    SettingsDep,
)
from vault.api.routes.files import VersionOut, version_out
from vault.db.models.uploads import UploadSession
from vault.services import uploads

router = APIRouter(prefix="/v1/cases/{case_id}", tags=["files"])

# Batch small network chunks into larger writes; bounded (at most two batches per request), so
# memory does not grow with the part or file size.
WRITE_BATCH = 2 << 20


class CreateUpload(BaseModel):
    file_id: str
    version: VersionField
    total_size: SizeField
    part_size: SizeField


class PartOut(BaseModel):
    part_number: int
    size: int
    sha256: str


class UploadOut(BaseModel):
    upload_id: str
    file_id: str
    version: int
    total_size: int
    part_size: int
    part_count: int
    created_at: datetime
    parts: list[PartOut]


class CompleteUpload(BaseModel):
    manifest: dict[str, Any]
    encrypted_metadata: str
    wrapped_key: str


class CompletedVersion(VersionOut):
    # The leaf of the upload event in the audit log: the client's receipt of its own action.
    log_index: int | None = None


async def _settle(pending: asyncio.Future[None] | None) -> None:
    """Let a write still running on a worker thread finish before its file is discarded."""
    if pending is not None and not pending.done():
        await asyncio.wait({pending})
    if pending is not None and pending.done() and not pending.cancelled():
        pending.exception()  # retrieved: the first error is the one that is raised


def _upload_out(upload: UploadSession, parts: list) -> UploadOut:
    return UploadOut(
        upload_id=upload.id,
        file_id=upload.file_id,
        version=upload.version,
        total_size=upload.total_size,
        part_size=upload.part_size,
        part_count=upload.part_count,
        created_at=upload.created_at,
        parts=[PartOut(part_number=p.part_number, size=p.size, sha256=p.sha256) for p in parts],
    )


@router.post("/uploads", status_code=status.HTTP_201_CREATED)
def create_upload(
    case_id: str,
    body: CreateUpload,
    user: CurrentUser,
    db: DbSession,
    clock: ClockDep,
    settings: SettingsDep,
) -> UploadOut:
    upload = uploads.create_upload(
        db,
        settings,
        user=user,
        case_id=case_id,
        file_id=body.file_id,
        version=body.version,
        total_size=body.total_size,
        part_size=body.part_size,
        now=clock(),
    )
    return _upload_out(upload, [])


@router.get("/uploads/{upload_id}")
def upload_status(case_id: str, upload_id: str, user: CurrentUser, db: DbSession) -> UploadOut:
    """What the server holds, so an interrupted upload sends only the missing parts."""
    upload = uploads.get_upload(db, user=user, case_id=case_id, upload_id=upload_id)
    return _upload_out(upload, uploads.upload_parts(db, upload.id))


@router.delete("/uploads/{upload_id}", status_code=status.HTTP_204_NO_CONTENT)
def abort_upload(
    case_id: str, upload_id: str, user: CurrentUser, db: DbSession, store: BlobStoreDep
) -> Response:
    uploads.abort_upload(db, store, user=user, case_id=case_id, upload_id=upload_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put("/uploads/{upload_id}/parts/{part_number}")
async def put_part(
    case_id: str,
    upload_id: str,
    part_number: PartNumberPath,
    request: Request,
    user: CurrentUser,
    db: DbSession,
    clock: ClockDep,
    store: BlobStoreDep,
    x_part_sha256: Annotated[str | None, Header()] = None,
) -> PartOut:
    """Store one part; re-sending a part is safe, and parts may arrive in any order."""
    expected_sha = uploads.parse_sha256_hex(x_part_sha256)
    upload = await run_in_threadpool(
        uploads.get_upload, db, user=user, case_id=case_id, upload_id=upload_id
    )
    expected = uploads.expected_part_size(upload, part_number)
    declared = request.headers.get("content-length")
    # Compared as text: int() of a header of thousands of digits would raise.
    if declared is not None and declared.isdigit() and declared.lstrip("0") != str(expected):
        raise uploads.PartMismatch(f"this part is {expected} bytes; Content-Length is {declared}")
    writer = await run_in_threadpool(store.writer)
    # While one batch is hashed and written on a worker thread, the next is read from the
    # connection: the network and the disk work at the same time.
    pending: asyncio.Future[None] | None = None
    try:
        received = 0
        batch = bytearray()
        async for chunk in request.stream():
            received += len(chunk)
            if received > expected:
                raise uploads.PartMismatch(f"this part is {expected} bytes; more arrived")
            batch += chunk
            if len(batch) >= WRITE_BATCH:
                if pending is not None:
                    await pending
                # Handed over whole, not copied; a fresh buffer takes the next bytes.
                pending = asyncio.ensure_future(run_in_threadpool(writer.write, batch))
                batch = bytearray()
        if pending is not None:
            await pending
        if batch:
            await run_in_threadpool(writer.write, batch)
        info = await run_in_threadpool(writer.commit)
    except ClientDisconnect as exc:
        # An interrupted part is normal (the client resumes later): nothing kept, nothing logged.
        await _settle(pending)
        writer.abort()
        raise uploads.PartMismatch("the connection closed before the part was complete") from exc
    except BaseException:
        await _settle(pending)
        writer.abort()
        raise
    try:
        uploads.check_received_part(info, expected_size=expected, expected_sha256=expected_sha)
    except uploads.PartMismatch:
        store.delete(info.key)
        raise
    part = await run_in_threadpool(
        uploads.record_part,
        db,
        store,
        user=user,
        case_id=case_id,
        upload_id=upload_id,
        part_number=part_number,
        info=info,
        now=clock(),
    )
    return PartOut(part_number=part.part_number, size=part.size, sha256=part.sha256)


@router.post("/uploads/{upload_id}/complete", status_code=status.HTTP_201_CREATED)
def complete_upload(
    case_id: str,
    upload_id: str,
    body: CompleteUpload,
    user: CurrentUser,
    db: DbSession,
    clock: ClockDep,
    address: ClientAddress,
    store: BlobStoreDep,
) -> CompletedVersion:
    completed = uploads.complete_upload(
        db,
        store,
        user=user,
        case_id=case_id,
        upload_id=upload_id,
        manifest=body.manifest,
        encrypted_metadata=body.encrypted_metadata,
        wrapped_key=body.wrapped_key,
        source=address,
        now=clock(),
    )
    return CompletedVersion(
        **version_out(completed.version).model_dump(), log_index=completed.log_index
    )


