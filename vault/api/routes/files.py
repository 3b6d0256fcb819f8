"""Routes: file listing, ranged downloads, signed deletion (uploads are in `uploads`).

Downloads stream a version's part blobs in order, never holding a whole file in memory.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from pydantic_core import to_json

from vault.api.bounds import VersionPath
from vault.api.deps import (
    BlobStoreDep,
    ClientAddress,
    ClockDep,
    CurrentUser,
    DbSession,
    SettingsDep,
)
from vault.api.problems import problem
from vault.db.models.files import FileRow, FileVersion
from vault.errors import InvalidRequest
from vault.protocol.cursor import CursorError, format_cursor, parse_cursor
from vault.services import files

router = APIRouter(prefix="/v1/cases/{case_id}", tags=["files"])

# At most 18 digits each: any blob is smaller, and int() never sees thousands of digits.
_RANGE = re.compile(r"bytes=(\d{0,18})-(\d{0,18})")
MAX_LIST_LIMIT = 10_000


class VersionOut(BaseModel):
    file_id: str
    version: int
    blob_size: int
    uploader_id: str
    created_at: datetime
    manifest: dict[str, str]
    encrypted_metadata: str
    wrapped_key: str
    deleted: bool
    tombstone: dict[str, str] | None = None


class FileList(BaseModel):
    versions: list[VersionOut]
    # Only with `limit`: the `after` of the next page, or null on the last page.
    next: str | None = None


class Tombstone(BaseModel):
    tombstone: dict[str, Any]


def version_out(v: FileVersion, f: FileRow | None = None) -> VersionOut:
    tombstone = (
        {"body": f.tombstone_body, "sig": f.tombstone_sig}
        if f is not None and f.tombstone_body and f.tombstone_sig
        else None
    )
    return VersionOut(
        file_id=v.file_id,
        version=v.version,
        blob_size=v.blob_size,
        uploader_id=v.uploader_id,
        created_at=v.created_at,
        manifest={"body": v.manifest_body, "sig": v.manifest_sig},
        encrypted_metadata=v.encrypted_metadata,
        wrapped_key=v.wrapped_key,
        deleted=v.deleted,
        tombstone=tombstone,
    )


def _listed_versions(listing: files.Listing) -> list[dict[str, Any]]:
    """A listing as the JSON objects `VersionOut` describes (rows unpacked by position:
    per-row attribute lookups were a measurable part of a 10,000-file list)."""
    created = listing.created_at
    tombstone = listing.tombstones.get
    return [
        {
            "file_id": file_id,
            "version": version,
            "blob_size": blob_size,
            "uploader_id": uploader_id,
            "created_at": created(created_at),
            "manifest": {"body": manifest_body, "sig": manifest_sig},
            "encrypted_metadata": encrypted_metadata,
            "wrapped_key": wrapped_key,
            "deleted": bool(deleted),
            "tombstone": tombstone(file_id),
        }
        for (
            file_id,
            version,
            blob_size,
            uploader_id,
            created_at,
            manifest_body,
            manifest_sig,
            encrypted_metadata,
            wrapped_key,
            deleted,
        ) in listing.rows
    ]


def _parse_after(after: str) -> tuple[str, int]:
    try:
        return parse_cursor(after)
    except CursorError as exc:
        raise InvalidRequest("after is FILE_ID:VERSION, as given in next") from exc


@router.get("/files", response_model=FileList)
def list_files(
    case_id: str,
    user: CurrentUser,
    db: DbSession,
    clock: ClockDep,
    address: ClientAddress,
    settings: SettingsDep,
    limit: Annotated[int | None, Query(ge=1, le=MAX_LIST_LIMIT)] = None,
    after: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    """Every version, or with `limit` one page of them; `next` names where the next page starts.

    The document is serialised straight from the selected columns (same JSON as `FileList`):
    validating one model per row made a 10,000-file case cost most of a second.
    """
    cursor = _parse_after(after) if after is not None else None
    listing = files.list_files(
        db,
        user=user,
        case_id=case_id,
        source=address,
        now=clock(),
        limit=limit,
        after=cursor,
        aggregation_window=settings.event_aggregation_window,
    )
    document: dict[str, Any] = {"versions": _listed_versions(listing)}
    if limit is not None:
        last = listing.rows[-1] if len(listing.rows) == limit else None
        document["next"] = None if last is None else format_cursor(last.file_id, last.version)
    return Response(content=to_json(document), media_type="application/json")


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """One byte range as [start, end); None when unsatisfiable or not understood."""
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if first == "" and last == "":
        return None
    if first == "":
        suffix = int(last)
        if suffix == 0 or size == 0:
            return None
        return max(0, size - suffix), size
    start = int(first)
    end = size if last == "" else min(int(last) + 1, size)
    if start >= size or end <= start:
        return None
    return start, end


@router.get("/files/{file_id}/versions/{version}/blob")
def download(
    case_id: str,
    file_id: str,
    version: VersionPath,
    user: CurrentUser,
    db: DbSession,
    clock: ClockDep,
    address: ClientAddress,
    store: BlobStoreDep,
    range_header: Annotated[str | None, Header(alias="range")] = None,
) -> Response:
    """Stream the encrypted blob; a Range request resumes an interrupted download."""
    row = files.find_version(db, user=user, case_id=case_id, file_id=file_id, version=version)
    parts = files.version_parts(db, row)
    size = row.blob_size
    headers = {"Accept-Ranges": "bytes", "ETag": f'"{row.blob_sha256}"'}
    start, end, code = 0, size, status.HTTP_200_OK
    if range_header is not None:
        parsed = _parse_range(range_header, size)
        if parsed is None:
            return problem(
                status.HTTP_416_RANGE_NOT_SATISFIABLE,
                "range_not_satisfiable",
                "The requested range is not satisfiable",
                f"the blob is {size} bytes; send one range, bytes=START-[END]",
                headers={"Content-Range": f"bytes */{size}"},
            )
        start, end = parsed
        code = status.HTTP_206_PARTIAL_CONTENT
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    log_index = files.log_download(
        db, user=user, row=row, source=address, detail={"start": start, "end": end}, now=clock()
    )
    # Checked before any byte is sent: a damaged stored copy is a clear blob_damaged problem.
    body = files.stream_parts(store, parts, start, end)
    headers["Content-Length"] = str(end - start)
    headers["X-CaseVault-Log-Index"] = str(log_index)
    return StreamingResponse(
        body,
        status_code=code,
        media_type="application/octet-stream",
        headers=headers,
    )


@router.post("/files/{file_id}/tombstone")
def delete_file(
    case_id: str,
    file_id: str,
    body: Tombstone,
    user: CurrentUser,
    db: DbSession,
    clock: ClockDep,
    address: ClientAddress,
) -> dict[str, Any]:
    deleted = files.delete_file(
        db,
        user=user,
        case_id=case_id,
        file_id=file_id,
        tombstone=body.tombstone,
        source=address,
        now=clock(),
    )
    row = deleted.row
    return {
        "file_id": row.file_id,
        "deleted_at": row.deleted_at.isoformat() if row.deleted_at else "",
        "log_index": deleted.log_index,
    }
