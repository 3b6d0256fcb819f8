"""Download: verify, fetch, decrypt (DESIGN.md section 2).

Order: the version's manifest, metadata and wrapped key are verified (client.files.listing);
the blob is fetched into the transfer folder, resuming with Range, its size and SHA-256 checked
against the manifest on the way to the disk; it is decrypted to a temporary file that is renamed
only after the plaintext SHA-256 matches; then the download's own log entry is proven.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from client import crypto
from client.cases import CaseContext, CaseOps
from client.errors import BlobDamaged, ServerCopyDamaged, VaultError
from client.files.listing import CaseFiles
from client.session import Session
from vault.protocol.events import Action
from vault.protocol.ids import is_valid_id
from vault.protocol.records import Manifest

_HASH_READ = 1024 * 1024


def _header_index(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None


def _safe_filename(name: str, file_id: str) -> str:
    """A file name from (server-stored, though authenticated) metadata: never a path."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    if base in ("", ".", "..") or "\x00" in base:
        return file_id
    return base


class Downloads:
    """Fetch, verify and decrypt files of a case, over a Session."""

    def __init__(self, session: Session, cases: CaseOps | None = None) -> None:
        self.session = session
        self.cases = cases or CaseOps(session)
        self.files = CaseFiles(session, self.cases)

    def get(self, case_id: str, file_id: str, *, output: Path | None,
            version: int | None) -> dict[str, Any]:
        if not is_valid_id(file_id):
            raise VaultError(f"{file_id!r} is not a file id (32 hex digits)")
        ctx = self.cases.load(case_id)
        if version is None:
            v = self.files.latest(ctx).get(file_id)
        else:
            v = next((x for x in self.files.versions(ctx) if x.get("file_id") == file_id
                      and x.get("version") == version and not self.files.deleted(ctx, x)), None)
        if v is None:
            raise VaultError(f"no file {file_id}" + (f" version {version}" if version else "")
                             + " in this case")
        manifest, file_key, meta = self.files.verify(ctx, v)
        self.files.record_seen(ctx, {file_id: (manifest.version, False)})
        dest = Path(output) if output is not None else Path.cwd() / _safe_filename(
            meta.name, file_id)
        if dest.is_dir():
            dest = dest / _safe_filename(meta.name, file_id)
        if dest.exists():
            raise VaultError(f"{dest} already exists; choose another path with -o")
        key = f"down-{case_id}-{file_id}-{manifest.version}-{manifest.blob_sha256[:16]}"
        blob_path = self.session.keystore.transfer_path(key, "blob")
        log_index = self._download(ctx, manifest, blob_path, meta.name)
        try:
            with blob_path.open("rb") as src:
                # The blob's SHA-256 was checked against the manifest as it reached the disk.
                crypto.decrypt_to_path(
                    src, dest, file_key, case_id=case_id, file_id=file_id,
                    version=manifest.version, plaintext_size=meta.size,
                    expected_sha256=meta.sha256, blob_verified_by_caller=True)
        except crypto.IntegrityError as exc:
            blob_path.unlink(missing_ok=True)
            raise crypto.IntegrityError(f"file {file_id}") from exc
        blob_path.unlink(missing_ok=True)
        self.cases.receipt(log_index, expect={"action": Action.FILE_DOWNLOADED,
                                              "case_id": case_id, "file_id": file_id},
                           detail={"version": manifest.version})
        return {"file_id": file_id, "version": manifest.version, "name": meta.name,
                "path": str(dest), "size": meta.size, "sha256": meta.sha256,
                "uploaded_by": ctx.username(manifest.uploader)}

    def _download(self, ctx: CaseContext, manifest: Manifest, blob_path: Path,
                  label: str) -> Any:
        """Fetch the blob into the transfer folder, resuming with Range where it stopped, and
        check its size and SHA-256 against the manifest on the way to the disk.

        Returns the audit log index the server gave for the download (None if it gave none).
        A blob already complete on disk still has its last byte fetched again: the request is
        logged like any download, so the access has its receipt.
        """
        what = f"file {manifest.file_id}"
        offset = blob_path.stat().st_size if blob_path.exists() else 0
        if offset > manifest.blob_size:
            blob_path.unlink()
            offset = 0
        offset = min(offset, manifest.blob_size - 1)
        digest = hashlib.sha256()
        fd = os.open(blob_path, os.O_RDWR | os.O_CREAT, 0o600)
        with os.fdopen(fd, "r+b") as out, \
                self.session.bar(f"get {label}", manifest.blob_size) as bar:
            # Bytes kept from an earlier attempt are hashed once here; new bytes as they come.
            while chunk := out.read(min(_HASH_READ, offset - out.tell())):
                digest.update(chunk)
            out.truncate(offset)
            bar.advance(offset)
            written = offset

            def sink(chunk: bytes) -> None:
                nonlocal written
                written += len(chunk)
                if written > manifest.blob_size:
                    raise crypto.IntegrityError(what)
                out.write(chunk)
                digest.update(chunk)
                bar.advance(len(chunk))

            headers: dict[str, str] = {}
            try:
                self.session.api.download_blob(
                    ctx.case_id, manifest.file_id, manifest.version, sink, offset=offset,
                    expected_size=manifest.blob_size, headers_out=headers)
            except (crypto.IntegrityError, BlobDamaged) as exc:
                # Bytes already fetched belong to a copy that cannot be completed.
                out.close()
                blob_path.unlink(missing_ok=True)
                if isinstance(exc, BlobDamaged):
                    raise ServerCopyDamaged(manifest.file_id) from exc
                raise
            out.flush()
        if written != manifest.blob_size or digest.hexdigest() != manifest.blob_sha256:
            blob_path.unlink(missing_ok=True)
            raise crypto.IntegrityError(what)
        return _header_index(headers.get("x-casevault-log-index"))
