"""Uploads: resumable sessions of parts (`sessions`) and atomic completion by a signed manifest
(`completion`). Importers use the names re-exported here.

Blob first, then row: part blobs are written before the rows that name them, so a crash leaves
at worst an unreferenced blob for the garbage collector, never a row without its bytes. A
completed version keeps its part blobs, in order, as they are (each already written and
fsynced once): completion reads them to check the manifest's hash but never copies them.
Nothing here holds a whole part or file in memory.
"""

from vault.services.uploads.completion import (
    CompletedVersion,
    ManifestMismatch,
    UploadIncomplete,
    complete_upload,
)
from vault.services.uploads.sessions import (
    MAX_PARTS,
    FileTooLarge,
    PartMismatch,
    PartTooLarge,
    QuotaExceeded,
    UploadNotFound,
    VersionConflict,
    abort_upload,
    check_received_part,
    create_upload,
    expected_part_size,
    get_upload,
    parse_sha256_hex,
    record_part,
    upload_parts,
    used_bytes,
)

__all__ = [
    "MAX_PARTS",
    "CompletedVersion",
    "FileTooLarge",
    "ManifestMismatch",
    "PartMismatch",
    "PartTooLarge",
    "QuotaExceeded",
    "UploadIncomplete",
    "UploadNotFound",
    "VersionConflict",
    "abort_upload",
    "check_received_part",
    "complete_upload",
    "create_upload",
    "expected_part_size",
    "get_upload",
    "parse_sha256_hex",
    "record_part",
    "upload_parts",
    "used_bytes",
]
