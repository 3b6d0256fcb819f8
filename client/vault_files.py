"""Files on the client: encrypt, upload in parts (resumable), list, verify and download.

Download order (DESIGN.md section 2): the manifest signature against the uploader's pinned key
and the uploader's upload rights at the manifest's point of the replayed membership log; the
hashes of the encrypted metadata and wrapped key against the manifest; the blob size and hash;
then decryption to a temporary file that is renamed only after the plaintext SHA-256 matches.
"""

from __future__ import annotations

import contextlib
import hashlib
import mimetypes
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from client import crypto
from client.api import ApiError, BlobDamaged, NotFound
from client.auditlog import AuditVerificationError
from client.vault_cases import CaseContext, CaseOps, audit_failure, iso
from client.vault_errors import ServerCopyDamaged, VaultError
from client.vault_history import check_listing
from client.vault_listing import fetch_all_versions
from client.vault_upload import LocalCopyDamaged, PartSender, PartWriter, part_digests
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


class _AlreadyDone(Exception):  # noqa: N818 - control flow inside the resume, never escapes
    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__("already completed")
        self.result = result


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

    def put(self, case_id: str, paths: list[Path], *,
            file_id: str | None = None) -> list[dict[str, Any]]:
        """Encrypt and upload files; with `file_id`, one path becomes that file's next version."""
        for path in paths:
            if not path.is_file():
                raise VaultError(f"{path} is not a readable file")
        if file_id is not None:
            if not is_valid_id(file_id):
                raise VaultError(f"{file_id!r} is not a file id (32 hex digits)")
            if len(paths) != 1:
                raise VaultError("a new version takes exactly one file")
        ctx = self.cases.load(case_id)
        if not ctx.state.may_upload(ctx.me):
            raise VaultError("viewers cannot upload to this case")
        target = None
        if file_id is not None:
            current = self._latest(ctx).get(file_id)
            if current is None:
                raise VaultError(f"no file {file_id} in this case")
            manifest, _, _ = self._verify(ctx, current)
            self._record_seen(ctx, {file_id: (manifest.version, False)})
            target = (file_id, manifest.version + 1)
        return [self._put_one(ctx, Path(path), target) for path in paths]

    def _transfer_key(self, ctx: CaseContext, path: Path,
                      target: tuple[str, int] | None) -> str:
        st = path.stat()
        ident = f"{path.resolve()}\x00{st.st_size}\x00{st.st_mtime_ns}\x00{target}"
        return f"up-{ctx.case_id}-{hashlib.sha256(ident.encode()).hexdigest()[:32]}"

    def _put_one(self, ctx: CaseContext, path: Path,
                 target: tuple[str, int] | None) -> dict[str, Any]:
        ks = self.vault.keystore
        key = self._transfer_key(ctx, path, target)
        state = ks.load_transfer(key)
        blob_path = ks.transfer_path(key, "blob")
        if state is not None and (state.get("generation") != ctx.generation
                                  or not blob_path.exists()
                                  or (target and (state.get("file_id"),
                                                  state.get("version")) != target)):
            state = None  # the case key rotated, the blob is gone, or another version is due
        if state is not None:
            try:
                self._resume(ctx, state, key, blob_path, path.name)
            except LocalCopyDamaged:
                self._abort(ctx, state)
                state = None  # the kept copy changed on this disk: encrypt again
            except _AlreadyDone as done:
                ks.clear_transfer(key)
                blob_path.unlink(missing_ok=True)
                return done.result
        if state is None:
            state = self._encrypt_and_send(ctx, path, blob_path, key, target)
        result = self._complete(ctx, state, key)
        ks.clear_transfer(key)
        blob_path.unlink(missing_ok=True)
        return result

    def _resume(self, ctx: CaseContext, state: dict[str, Any], key: str, blob_path: Path,
                label: str) -> None:
        try:
            self._send_parts(ctx, state, blob_path, label)
        except NotFound:
            done = self._already_completed(ctx, state)
            if done is not None:
                # A completion the server committed but whose reply never arrived.
                raise _AlreadyDone(done) from None
            # The server forgot the upload (expired or aborted): start it afresh once.
            state["upload_id"] = self._create_upload(ctx, state)
            self.vault.keystore.save_transfer(key, state)
            self._send_parts(ctx, state, blob_path, label)

    def _encrypt_and_send(self, ctx: CaseContext, path: Path, blob_path: Path, key: str,
                          target: tuple[str, int] | None) -> dict[str, Any]:
        """Encrypt once into the transfer folder; each part goes up as soon as it is written."""
        file_id, version = target or (new_id(), 1)
        file_key = crypto.new_file_key()
        state: dict[str, Any] = {
            "case_id": ctx.case_id, "file_id": file_id, "version": version,
            "generation": ctx.generation, "name": path.name,
            "blob_size": crypto.blob_size_for(path.stat().st_size),
            # Kept with the upload: a resume must cut the blob exactly as it was announced.
            "part_size": PART_SIZE,
        }
        state["upload_id"] = self._create_upload(ctx, state)
        fd = os.open(blob_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out, path.open("rb") as src, \
                self._bar(f"put {path.name}", state["blob_size"]) as bar:
            sender = PartSender(blob_path, _part_size(state), state["blob_size"],
                                self._part_request(ctx, state), bar.advance)
            writer = PartWriter(out, _part_size(state), sender.submit)
            try:
                res = crypto.encrypt_stream(src, writer, file_key, case_id=ctx.case_id,
                                            file_id=file_id, version=version)
                digests = writer.close_parts()
                if res.blob_size != state["blob_size"]:
                    raise VaultError(f"{path} changed while it was read; upload it again")
            except BaseException:
                sender.cancel()
                self._abort(ctx, state)
                raise
            media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            meta = crypto.FileMetadata(name=path.name, size=res.plaintext_size,
                                       sha256=res.plaintext_sha256, media_type=media_type,
                                       client_time=int(time.time()))
            enc_meta = crypto.encrypt_file_metadata(
                meta, file_key=file_key, case_id=ctx.case_id, file_id=file_id, version=version)
            wrapped = crypto.wrap_file_key(file_key, case_key=ctx.key, case_id=ctx.case_id,
                                           file_id=file_id, version=version,
                                           generation=ctx.generation)
            state.update({
                "size": res.plaintext_size, "sha256": res.plaintext_sha256,
                "blob_sha256": res.blob_sha256, "part_sha256": digests,
                "encrypted_metadata": b64e(enc_meta), "wrapped_key": b64e(wrapped),
            })
            # Saved before waiting on the parts: a broken connection leaves a resumable upload.
            # The blob is not fsynced: a resume checks each part against these hashes anyway.
            self.vault.keystore.save_transfer(key, state)
            sender.wait()
        return state

    def _abort(self, ctx: CaseContext, state: dict[str, Any]) -> None:
        """Tell the server to drop an upload this client will not finish (best effort)."""
        with contextlib.suppress(ApiError, VaultError):
            self.cases._call(lambda api: api.delete(
                self._files_path(ctx.case_id, f"/uploads/{state['upload_id']}")))

    def _already_completed(self, ctx: CaseContext,
                           state: dict[str, Any]) -> dict[str, Any] | None:
        """This exact upload as a verified version of the case, with its receipt, or None."""
        for v in self._versions(ctx):
            if v.get("file_id") == state["file_id"] and v.get("version") == state["version"]:
                manifest, _, _ = self._verify(ctx, v)
                me = self.vault.identity().user_id
                if manifest.blob_sha256 != state["blob_sha256"] or manifest.uploader != me:
                    return None
                self._record_seen(ctx, {state["file_id"]: (state["version"], False)})
                expect = {"actor_id": me, "action": "file:version:uploaded",
                          "case_id": ctx.case_id, "file_id": state["file_id"]}
                # The reply with the log index was lost: find our own entry in the log (it
                # lies after the checkpoint pinned before completing) and prove it instead.
                log = self.cases.audit_log()
                try:
                    index = log.find_own_entry(expect, {"version": state["version"]},
                                               start=int(state.get("log_from", 0)))
                except AuditVerificationError as exc:
                    raise audit_failure(exc, "entry of your file:version:uploaded") from exc
                self.cases.receipt(index, expect=expect, detail={"version": state["version"]})
                return {k: state[k] for k in ("file_id", "version", "name", "size", "sha256")}
        return None

    def _create_upload(self, ctx: CaseContext, state: dict[str, Any]) -> str:
        reply = self.cases._call(lambda api: api.post(
            self._files_path(ctx.case_id, "/uploads"),
            {"file_id": state["file_id"], "version": state["version"],
             "total_size": state["blob_size"], "part_size": _part_size(state)}))
        return str(reply["upload_id"])

    def _part_request(self, ctx: CaseContext, state: dict[str, Any]) -> Callable[..., None]:
        base = self._files_path(ctx.case_id, f"/uploads/{state['upload_id']}")
        self.cases.api  # noqa: B018 - open the session's client before threads share it

        def send(number: int, body: Any, digest: str, length: int) -> None:
            # An explicit length: the server checks it, and slices are not sent chunked.
            self.cases._call(lambda api: api.put_bytes(
                f"{base}/parts/{number}", body,
                headers={"X-Part-SHA256": digest, "Content-Length": str(length)}))
        return send

    def _send_parts(self, ctx: CaseContext, state: dict[str, Any], blob_path: Path,
                    label: str) -> None:
        """Resume: send the parts the server lacks, each checked against its recorded hash."""
        base = self._files_path(ctx.case_id, f"/uploads/{state['upload_id']}")
        status = self.cases._call(lambda api: api.get(base))
        have = {p["part_number"]: p["sha256"] for p in status.get("parts", [])}
        total, part_size = int(state["blob_size"]), _part_size(state)
        count = -(-total // part_size)
        with self._bar(f"put {label}", total) as bar:
            sender = PartSender(blob_path, part_size, total, self._part_request(ctx, state),
                                bar.advance)
            try:
                digests = state.get("part_sha256")
                if not isinstance(digests, list) or len(digests) != count:
                    digests = part_digests(sender.read_part, count)
                for n in range(count):
                    if have.get(n) == digests[n]:
                        bar.advance(min(part_size, total - n * part_size))
                    else:
                        sender.submit(n, digests[n], verify=True)
            except BaseException:
                sender.cancel()
                raise
            sender.wait()

    def _complete(self, ctx: CaseContext, state: dict[str, Any], key: str) -> dict[str, Any]:
        identity = self.vault.identity()
        # Where a lost reply's log entry will be looked for: after the checkpoint pinned now.
        pinned = self.cases.audit_log().pinned()
        state["log_from"] = pinned[0].size if pinned else 0
        self.vault.keystore.save_transfer(key, state)
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
        self._record_seen(ctx, {state["file_id"]: (state["version"], False)})
        return {"file_id": state["file_id"], "version": state["version"], "name": state["name"],
                "size": state["size"], "sha256": state["sha256"]}

    # ------------------------------------------------------------ listing and verifying

    def _versions(self, ctx: CaseContext) -> list[dict[str, Any]]:
        path = self._files_path(ctx.case_id, "/files")
        versions = fetch_all_versions(
            lambda limit, after: self.cases._call(
                lambda api: api.list_page(path, limit=limit, after=after)),
            case_id=ctx.case_id)
        # Before anything is used: the listing must not hide what this client verified.
        check_listing(self.vault.keystore.files_seen(ctx.case_id), versions)
        return versions

    def _record_seen(self, ctx: CaseContext, seen: dict[str, tuple[int, bool]]) -> None:
        self.vault.keystore.record_files_seen(ctx.case_id, seen)

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
        deleted = {fid for fid, v in latest.items() if self._deleted(ctx, v)}
        self._record_seen(ctx, {fid: (0, True) for fid in deleted})
        return {fid: v for fid, v in latest.items() if fid not in deleted}

    def ls(self, case_id: str) -> list[dict[str, Any]]:
        ctx = self.cases.load(case_id)
        out, seen = [], {}
        for fid, v in sorted(self._latest(ctx).items()):
            manifest, _, meta = self._verify(ctx, v)
            seen[fid] = (manifest.version, False)
            out.append({"file_id": fid, "version": manifest.version, "name": meta.name,
                        "size": meta.size, "sha256": meta.sha256,
                        "uploaded_by": ctx.username(manifest.uploader),
                        "uploaded_at": iso(manifest.time)})
        self._record_seen(ctx, seen)
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
        self._record_seen(ctx, {file_id: (manifest.version, False)})
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
                # The blob's SHA-256 was checked against the manifest as it reached the disk.
                crypto.decrypt_to_path(
                    src, dest, file_key, case_id=case_id, file_id=file_id,
                    version=manifest.version, plaintext_size=meta.size,
                    expected_sha256=meta.sha256, blob_verified_by_caller=True)
        except crypto.IntegrityError as exc:
            blob_path.unlink(missing_ok=True)
            raise crypto.IntegrityError(f"file {file_id}") from exc
        blob_path.unlink(missing_ok=True)
        self.cases.receipt(log_index, expect={"action": "file:version:downloaded",
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
        path = self._files_path(
            ctx.case_id, f"/files/{manifest.file_id}/versions/{manifest.version}/blob")
        fd = os.open(blob_path, os.O_RDWR | os.O_CREAT, 0o600)
        with os.fdopen(fd, "r+b") as out, self._bar(f"get {label}", manifest.blob_size) as bar:
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
            out.flush()
        if written != manifest.blob_size or digest.hexdigest() != manifest.blob_sha256:
            blob_path.unlink(missing_ok=True)
            raise crypto.IntegrityError(what)
        return _header_index(headers.get("x-casevault-log-index"))

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
        reply = self.cases._call(lambda api: api.post(
            self._files_path(case_id, f"/files/{file_id}/tombstone"), {"tombstone": tomb}))
        self._record_seen(ctx, {file_id: (0, True)})
        self.cases.receipt(reply.get("log_index") if isinstance(reply, dict) else None,
                           expect={"action": "file:file:deleted", "case_id": case_id,
                                   "file_id": file_id})
