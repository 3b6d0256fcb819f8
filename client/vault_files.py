"""Files on the client: encrypt, upload in parts (resumable), list, verify and download.

Download order (DESIGN.md section 2): the manifest signature against the uploader's pinned key
and the uploader's upload rights at the manifest's point of the replayed membership log; the
hashes of the encrypted metadata and wrapped key against the manifest; the blob size and hash;
then decryption to a temporary file that is renamed only after the plaintext SHA-256 matches.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from client import crypto
from client.api import BlobDamaged, NotFound
from client.vault_cases import CaseContext, CaseOps, iso
from client.vault_errors import ServerCopyDamaged, VaultError
from vault.protocol.encoding import EncodingError, b64d, b64e
from vault.protocol.ids import is_valid_id, new_id
from vault.protocol.membership import verify_tombstone
from vault.protocol.records import (
    LABEL_MANIFEST,
    LABEL_TOMBSTONE,
    Manifest,
    RecordError,
    manifest_body,
    tombstone_body,
)

PART_SIZE = 8 * 1024 * 1024
_HASH_READ = 1024 * 1024


class _NoBar:
    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def advance(self, n: int) -> None:
        pass


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _part_size(state: dict[str, Any]) -> int:
    return int(state.get("part_size", PART_SIZE))


def _header_index(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None


def _safe_filename(name: str, file_id: str) -> str:
    """A file name from (server-stored, though authenticated) metadata: never a path."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    if base in ("", ".", "..") or "\x00" in base:
        return file_id
    return base


class FileOps:
    def __init__(self, cases: CaseOps, progress: Callable[[str, int], Any] | None) -> None:
        self.cases = cases
        self.vault = cases.vault
        self._progress = progress

    def _bar(self, label: str, total: int) -> Any:
        return self._progress(label, total) if self._progress else _NoBar()

    def _files_path(self, case_id: str, rest: str) -> str:
        return self.cases._path(case_id, rest)

    # ------------------------------------------------------------ upload

    def put(self, case_id: str, paths: list[Path]) -> list[dict[str, Any]]:
        for path in paths:
            if not path.is_file():
                raise VaultError(f"{path} is not a readable file")
        ctx = self.cases.load(case_id)
        if not ctx.state.may_upload(ctx.me):
            raise VaultError("viewers cannot upload to this case")
        return [self._put_one(ctx, Path(path)) for path in paths]

    def _transfer_key(self, ctx: CaseContext, path: Path) -> str:
        st = path.stat()
        ident = f"{path.resolve()}\x00{st.st_size}\x00{st.st_mtime_ns}"
        return f"up-{ctx.case_id}-{hashlib.sha256(ident.encode()).hexdigest()[:32]}"

    def _put_one(self, ctx: CaseContext, path: Path) -> dict[str, Any]:
        ks = self.vault.keystore
        key = self._transfer_key(ctx, path)
        state = ks.load_transfer(key)
        blob_path = ks.transfer_path(key, "blob")
        if state is not None and (state.get("generation") != ctx.generation
                                  or not blob_path.exists()):
            state = None  # the case key rotated or the blob is gone: start again
        if state is None:
            state = self._prepare(ctx, path, blob_path)
            ks.save_transfer(key, state)
        try:
            self._send_parts(ctx, state, blob_path, path.name)
        except NotFound:
            if self._already_completed(ctx, state):
                # A completion the server committed but whose reply never arrived.
                ks.clear_transfer(key)
                blob_path.unlink(missing_ok=True)
                return {k: state[k] for k in ("file_id", "version", "name", "size", "sha256")}
            # The server forgot the upload (expired or aborted): start it afresh once.
            state["upload_id"] = self._create_upload(ctx, state)
            ks.save_transfer(key, state)
            self._send_parts(ctx, state, blob_path, path.name)
        result = self._complete(ctx, state)
        ks.clear_transfer(key)
        blob_path.unlink(missing_ok=True)
        return result

    def _prepare(self, ctx: CaseContext, path: Path, blob_path: Path) -> dict[str, Any]:
        file_id, version = new_id(), 1
        file_key = crypto.new_file_key()
        with path.open("rb") as src, blob_path.open("wb") as dst:
            os.chmod(blob_path, 0o600)
            res = crypto.encrypt_stream(src, dst, file_key, case_id=ctx.case_id,
                                        file_id=file_id, version=version)
            dst.flush()
            os.fsync(dst.fileno())
        media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        meta = crypto.FileMetadata(name=path.name, size=res.plaintext_size,
                                   sha256=res.plaintext_sha256, media_type=media_type,
                                   client_time=int(time.time()))
        enc_meta = crypto.encrypt_file_metadata(meta, file_key=file_key, case_id=ctx.case_id,
                                                file_id=file_id, version=version)
        wrapped = crypto.wrap_file_key(file_key, case_key=ctx.key, case_id=ctx.case_id,
                                       file_id=file_id, version=version,
                                       generation=ctx.generation)
        state = {
            "case_id": ctx.case_id, "file_id": file_id, "version": version,
            "generation": ctx.generation, "name": path.name,
            "size": res.plaintext_size, "sha256": res.plaintext_sha256,
            "blob_size": res.blob_size, "blob_sha256": res.blob_sha256,
            "encrypted_metadata": b64e(enc_meta), "wrapped_key": b64e(wrapped),
            # Kept with the upload: a resume must cut the blob exactly as it was announced.
            "part_size": PART_SIZE,
        }
        state["upload_id"] = self._create_upload(ctx, state)
        return state

    def _already_completed(self, ctx: CaseContext, state: dict[str, Any]) -> bool:
        """Whether this exact upload is already a verified version of the case."""
        for v in self._versions(ctx):
            if v.get("file_id") == state["file_id"] and v.get("version") == state["version"]:
                manifest, _, _ = self._verify(ctx, v)
                return (manifest.blob_sha256 == state["blob_sha256"]
                        and manifest.uploader == self.vault.identity().user_id)
        return False

    def _create_upload(self, ctx: CaseContext, state: dict[str, Any]) -> str:
        reply = self.cases._call(lambda api: api.post(
            self._files_path(ctx.case_id, "/uploads"),
            {"file_id": state["file_id"], "version": state["version"],
             "total_size": state["blob_size"], "part_size": _part_size(state)}))
        return str(reply["upload_id"])

    def _send_parts(self, ctx: CaseContext, state: dict[str, Any], blob_path: Path,
                    label: str) -> None:
        base = self._files_path(ctx.case_id, f"/uploads/{state['upload_id']}")
        status = self.cases._call(lambda api: api.get(base))
        have = {p["part_number"]: p["sha256"] for p in status.get("parts", [])}
        total, part_size = int(state["blob_size"]), _part_size(state)
        count = -(-total // part_size)
        with self._bar(f"put {label}", total) as bar, blob_path.open("rb") as blob:
            for n in range(count):
                blob.seek(n * part_size)
                data = blob.read(part_size)
                digest = _sha256_hex(data)
                if have.get(n) != digest:
                    self.cases._call(lambda api, n=n, data=data, digest=digest: api.put_bytes(
                        f"{base}/parts/{n}", data, headers={"X-Part-SHA256": digest}))
                bar.advance(len(data))

    def _complete(self, ctx: CaseContext, state: dict[str, Any]) -> dict[str, Any]:
        identity = self.vault.identity()
        body = manifest_body(
            case_id=ctx.case_id, file_id=state["file_id"], version=state["version"],
            generation=state["generation"], membership_seq=ctx.state.head.seq,
            blob_size=state["blob_size"], blob_sha256=state["blob_sha256"],
            meta_hash=_sha256_hex(b64d(state["encrypted_metadata"])),
            wrapped_key_hash=_sha256_hex(b64d(state["wrapped_key"])),
            uploader=identity.user_id, time=int(time.time()))
        manifest = identity.sign(LABEL_MANIFEST, body)
        reply = self.cases._call(lambda api: api.post(
            self._files_path(ctx.case_id, f"/uploads/{state['upload_id']}/complete"),
            {"manifest": manifest, "encrypted_metadata": state["encrypted_metadata"],
             "wrapped_key": state["wrapped_key"]}))
        self.cases.receipt(
            reply.get("log_index") if isinstance(reply, dict) else None,
            expect={"action": "file:version:uploaded", "case_id": ctx.case_id,
                    "file_id": state["file_id"]},
            detail={"version": state["version"]})
        return {"file_id": state["file_id"], "version": state["version"], "name": state["name"],
                "size": state["size"], "sha256": state["sha256"]}

    # ------------------------------------------------------------ listing and verifying

    def _versions(self, ctx: CaseContext) -> list[dict[str, Any]]:
        reply = self.cases._call(lambda api: api.get(self._files_path(ctx.case_id, "/files")))
        versions = reply.get("versions") if isinstance(reply, dict) else None
        if not isinstance(versions, list):
            raise crypto.IntegrityError(f"file list of case {ctx.case_id}")
        return versions

    def _verify(self, ctx: CaseContext, v: dict[str, Any]) -> tuple[Manifest, bytes,
                                                                    crypto.FileMetadata]:
        file_id = str(v.get("file_id"))
        what = f"file {file_id}"
        manifest = crypto.verify_download_manifest(
            v.get("manifest"), state=ctx.state, identities=ctx.identities,
            case_id=ctx.case_id, file_id=file_id, version=v.get("version"))
        try:
            enc_meta = b64d(v["encrypted_metadata"])
            wrapped = b64d(v["wrapped_key"])
        except (KeyError, TypeError, EncodingError) as exc:
            raise crypto.IntegrityError(what) from exc
        if (_sha256_hex(enc_meta) != manifest.meta_hash
                or _sha256_hex(wrapped) != manifest.wrapped_key_hash):
            raise crypto.IntegrityError(what)
        case_key = ctx.keys.get(manifest.generation)
        if case_key is None:
            raise VaultError(f"no key for {what}: it was encrypted for a generation you lack")
        file_key = crypto.unwrap_file_key(
            wrapped, case_key=case_key, case_id=ctx.case_id, file_id=file_id,
            version=manifest.version, generation=manifest.generation)
        meta = crypto.decrypt_file_metadata(enc_meta, file_key=file_key, case_id=ctx.case_id,
                                            file_id=file_id, version=manifest.version)
        return manifest, file_key, meta

    def _deleted(self, ctx: CaseContext, v: dict[str, Any]) -> bool:
        """A file counts as deleted only under a tombstone signed by someone allowed to."""
        if not v.get("deleted"):
            return False
        try:
            tomb = verify_tombstone(v.get("tombstone"), ctx.state, ctx.identities)
        except (RecordError, EncodingError, TypeError) as exc:
            raise crypto.IntegrityError(f"deletion of file {v.get('file_id')}") from exc
        if tomb.file_id != v.get("file_id"):
            raise crypto.IntegrityError(f"deletion of file {v.get('file_id')}")
        return True

    def _latest(self, ctx: CaseContext) -> dict[str, dict[str, Any]]:
        latest: dict[str, dict[str, Any]] = {}
        for v in self._versions(ctx):
            fid = v.get("file_id")
            if fid not in latest or v.get("version", 0) > latest[fid].get("version", 0):
                latest[fid] = v
        return {fid: v for fid, v in latest.items() if not self._deleted(ctx, v)}

    def ls(self, case_id: str) -> list[dict[str, Any]]:
        ctx = self.cases.load(case_id)
        out = []
        for fid, v in sorted(self._latest(ctx).items()):
            manifest, _, meta = self._verify(ctx, v)
            out.append({"file_id": fid, "version": manifest.version, "name": meta.name,
                        "size": meta.size, "sha256": meta.sha256,
                        "uploaded_by": ctx.username(manifest.uploader),
                        "uploaded_at": iso(manifest.time)})
        return sorted(out, key=lambda r: (r["name"], r["file_id"]))

    # ------------------------------------------------------------ download

    def get(self, case_id: str, file_id: str, *, output: Path | None,
            version: int | None) -> dict[str, Any]:
        if not is_valid_id(file_id):
            raise VaultError(f"{file_id!r} is not a file id (32 hex digits)")
        ctx = self.cases.load(case_id)
        if version is None:
            v = self._latest(ctx).get(file_id)
        else:
            v = next((x for x in self._versions(ctx) if x.get("file_id") == file_id
                      and x.get("version") == version and not self._deleted(ctx, x)), None)
        if v is None:
            raise VaultError(f"no file {file_id}" + (f" version {version}" if version else "")
                             + " in this case")
        manifest, file_key, meta = self._verify(ctx, v)
        dest = Path(output) if output is not None else Path.cwd() / _safe_filename(
            meta.name, file_id)
        if dest.is_dir():
            dest = dest / _safe_filename(meta.name, file_id)
        if dest.exists():
            raise VaultError(f"{dest} already exists; choose another path with -o")
        key = f"down-{case_id}-{file_id}-{manifest.version}-{manifest.blob_sha256[:16]}"
        blob_path = self.vault.keystore.transfer_path(key, "blob")
        log_index = self._download(ctx, manifest, blob_path, meta.name)
        try:
            with blob_path.open("rb") as src:
                crypto.decrypt_to_path(
                    src, dest, file_key, case_id=case_id, file_id=file_id,
                    version=manifest.version, plaintext_size=meta.size,
                    expected_sha256=meta.sha256, expected_blob_sha256=manifest.blob_sha256)
        except crypto.IntegrityError as exc:
            blob_path.unlink(missing_ok=True)
            raise crypto.IntegrityError(f"file {file_id}") from exc
        blob_path.unlink(missing_ok=True)
        if log_index is not False:  # a download request was made, so it was logged
            self.cases.receipt(log_index, expect={"action": "file:version:downloaded",
                                                  "case_id": case_id, "file_id": file_id},
                               detail={"version": manifest.version})
        return {"file_id": file_id, "version": manifest.version, "name": meta.name,
                "path": str(dest), "size": meta.size, "sha256": meta.sha256,
                "uploaded_by": ctx.username(manifest.uploader)}

    def _download(self, ctx: CaseContext, manifest: Manifest, blob_path: Path,
                  label: str) -> Any:
        """Fetch the blob into the transfer folder, resuming with Range where it stopped.

        Returns the audit log index the server gave for the download (None if it gave
        none), or False when the blob was already complete and nothing was requested.
        """
        log_index: Any = False
        offset = blob_path.stat().st_size if blob_path.exists() else 0
        if offset > manifest.blob_size:
            blob_path.unlink()
            offset = 0
        path = self._files_path(
            ctx.case_id, f"/files/{manifest.file_id}/versions/{manifest.version}/blob")
        fd = os.open(blob_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "ab") as out, self._bar(f"get {label}", manifest.blob_size) as bar:
            bar.advance(offset)
            written = offset

            def sink(chunk: bytes) -> None:
                nonlocal written
                written += len(chunk)
                if written > manifest.blob_size:
                    raise crypto.IntegrityError(f"file {manifest.file_id}")
                out.write(chunk)
                bar.advance(len(chunk))

            if offset < manifest.blob_size:
                headers: dict[str, str] = {}
                try:
                    self.cases._call(lambda api: api.download(
                        path, sink, offset=offset, expected_size=manifest.blob_size,
                        headers_out=headers))
                except (crypto.IntegrityError, BlobDamaged) as exc:
                    # Bytes already fetched belong to a copy that cannot be completed.
                    out.close()
                    blob_path.unlink(missing_ok=True)
                    if isinstance(exc, BlobDamaged):
                        raise ServerCopyDamaged(manifest.file_id) from exc
                    raise
                log_index = _header_index(headers.get("x-casevault-log-index"))
            out.flush()
            os.fsync(out.fileno())
        if blob_path.stat().st_size != manifest.blob_size:
            blob_path.unlink(missing_ok=True)
            raise crypto.IntegrityError(f"file {manifest.file_id}")
        return log_index

    # ------------------------------------------------------------ delete

    def rm(self, case_id: str, file_id: str) -> None:
        if not is_valid_id(file_id):
            raise VaultError(f"{file_id!r} is not a file id (32 hex digits)")
        ctx = self.cases.load(case_id)
        if not ctx.state.may_upload(ctx.me):
            raise VaultError("viewers cannot delete files")
        if file_id not in self._latest(ctx):
            raise VaultError(f"no file {file_id} in this case")
        identity = self.vault.identity()
        body = tombstone_body(case_id=case_id, file_id=file_id,
                              membership_seq=ctx.state.head.seq, deleter=identity.user_id,
                              time=int(time.time()))
        tomb = identity.sign(LABEL_TOMBSTONE, body)
        self.cases._call(lambda api: api.post(
            self._files_path(case_id, f"/files/{file_id}/tombstone"), {"tombstone": tomb}))
