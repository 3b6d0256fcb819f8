"""Upload: encrypt once into the transfer folder, send it in parts (resumable), complete it
with a signed manifest, and prove the upload's own audit log entry (the receipt).

A resume sends only the parts the server lacks, each checked against its recorded hash; a
completion whose reply was lost is found again in the case and in the log, not repeated.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import mimetypes
import os
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

from client import crypto
from client.api import field
from client.auditlog import audit_failure
from client.cases import CaseContext, CaseOps
from client.errors import (
    ApiError,
    AuditVerificationError,
    LocalCopyDamaged,
    MembershipStale,
    NotFound,
    VaultError,
)
from client.files.folders import keep_folder
from client.files.listing import CaseFiles, sha256_hex
from client.files.parts import PartSender, PartWriter, part_digests
from client.session import Session
from client.transfers import TransferStates
from client.trust import confirm_people, unverified_members
from vault.protocol.encoding import b64d, b64e
from vault.protocol.events import Action
from vault.protocol.ids import is_valid_id, new_id
from vault.protocol.intake import (
    MAX_NOTE_CHARS,
    MAX_SOURCE_CHARS,
    IntakeRecord,
    clean_original_name,
)
from vault.protocol.paths import split_path
from vault.protocol.records import LABEL_MANIFEST, manifest_body
from vault.protocol.text import is_clean_text

PART_SIZE = 8 * 1024 * 1024


def client_version() -> str:
    """What the intake record names as the software that took a file in."""
    try:
        return f"casevault/{importlib.metadata.version('casevault')}"
    except importlib.metadata.PackageNotFoundError:
        return "casevault"


class _AlreadyDone(Exception):  # noqa: N818 - control flow inside the resume, never escapes
    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__("already completed")
        self.result = result


def _part_size(state: dict[str, Any]) -> int:
    return int(state.get("part_size", PART_SIZE))


class Uploads:
    """Encrypt and upload files to a case, over a Session."""

    def __init__(self, session: Session, cases: CaseOps | None = None) -> None:
        self.session = session
        self.cases = cases or CaseOps(session)
        self.files = CaseFiles(session, self.cases)
        self._states: TransferStates | None = None
        self._intake_text: tuple[str, str] = ("", "")

    def _transfers(self) -> TransferStates:
        """Resume state, sealed under the identity (client.transfers); plaintext state an
        older client left is sealed the first time it is needed."""
        if self._states is None:
            self._states = TransferStates(self.session.keystore,
                                          crypto.LocalStateKey.of(self.session.identity()))
            self._states.seal_plaintext()
        return self._states

    def put(self, case_id: str, paths: list[Path], *, file_id: str | None = None,
            case_paths: list[str | None] | None = None, source: str = "",
            note: str = "") -> list[dict[str, Any]]:
        """Encrypt and upload files; with `file_id`, one path becomes that file's next version.

        `case_paths` gives each file its folder path in the case (client.files.folders); None
        leaves a file without one, except a new version, which stays in its file's folder.
        Every file (each new version too) carries its own intake record (vault.protocol.intake)
        with `source` and `note`, sealed in its metadata."""
        # Checked before anything is encrypted: a bad --note must not cost an upload.
        self._intake_text = _intake_text(source, note)
        places = list(case_paths) if case_paths is not None else [None] * len(paths)
        for path in paths:
            if not path.is_file():
                raise VaultError(f"{path} is not a readable file")
        if file_id is not None:
            if not is_valid_id(file_id):
                raise VaultError(f"{file_id!r} is not a file id (32 hex digits)")
            if len(paths) != 1:
                raise VaultError("a new version takes exactly one file")
        # Every put path (new file, new version, resume) starts here: the scan runs before
        # anything is encrypted or a kept resume state is used under its generation.
        ctx = self.cases.load_for_encryption(case_id)
        if not ctx.state.may_upload(ctx.me):
            raise VaultError("viewers cannot upload to this case")
        # Whoever holds a member's key reads what is encrypted here: people nobody compared
        # safety numbers with are confirmed once (or reported) before anything is encrypted.
        unverified = confirm_people(self.session, unverified_members(self.session, ctx),
                                    f"uploading to case {case_id}")
        target = None
        if file_id is not None:
            current = self.files.latest(ctx).get(file_id)
            if current is None:
                raise VaultError(f"no file {file_id} in this case")
            manifest, _, meta = self.files.verify(ctx, current)
            self.files.record_seen(ctx, {file_id: (manifest.version, False)})
            target = (file_id, manifest.version + 1)
            if places[0] is None:
                places[0] = keep_folder(meta, Path(paths[0]).name)
        results = []
        # The total over several files; each large file also has its own bar.
        total = sum(Path(p).stat().st_size for p in paths) if len(paths) > 1 else 0
        with self.session.bar(f"put {len(paths)} files", total) as overall:
            for path, place in zip(paths, places, strict=True):
                results.append({**self._put_one(ctx, Path(path), target, place),
                                "unverified_members": unverified})
                overall.advance(Path(path).stat().st_size if total else 0)
        return results

    def _transfer_key(self, ctx: CaseContext, path: Path,
                      target: tuple[str, int] | None, case_path: str | None = None) -> str:
        """The transfer's file name: a keyed hash of the file's path, size and time (the key
        as older clients named their files in clear, so their state is found again)."""
        st = path.stat()
        ident = f"{path.resolve()}\x00{st.st_size}\x00{st.st_mtime_ns}\x00{target}"
        if case_path is not None and case_path != path.name:
            # The sealed metadata names the path: another path is another upload. A file at
            # the case root keeps the key older clients used, so their resume state is found.
            ident += f"\x00{case_path}"
        if any(self._intake_text):
            # So do the intake's source and note: another statement is another upload.
            ident += "\x00{}\x00{}".format(*self._intake_text)
        key = f"up-{ctx.case_id}-{hashlib.sha256(ident.encode()).hexdigest()[:32]}"
        return self._transfers().name(key)

    def _put_one(self, ctx: CaseContext, path: Path, target: tuple[str, int] | None,
                 case_path: str | None = None) -> dict[str, Any]:
        ks, states = self.session.keystore, self._transfers()
        key = self._transfer_key(ctx, path, target, case_path)
        state = states.load(key)
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
                states.clear(key)
                blob_path.unlink(missing_ok=True)
                return done.result
        if state is None:
            state = self._encrypt_and_send(ctx, path, blob_path, key, target, case_path)
        result = self._complete(ctx, state, key)
        states.clear(key)
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
            self._transfers().save(key, state)
            self._send_parts(ctx, state, blob_path, label)

    def _encrypt_and_send(self, ctx: CaseContext, path: Path, blob_path: Path, key: str,
                          target: tuple[str, int] | None,
                          case_path: str | None = None) -> dict[str, Any]:
        """Encrypt once into the transfer folder; each part goes up as soon as it is written."""
        file_id, version = target or (new_id(), 1)
        file_key = crypto.new_file_key()
        # The name is the path's last segment (its NFC form), not the bytes this disk uses.
        name = split_path(case_path)[1] if case_path is not None else path.name
        state: dict[str, Any] = {
            "case_id": ctx.case_id, "file_id": file_id, "version": version,
            "generation": ctx.generation, "name": name, "path": case_path,
            "blob_size": crypto.blob_size_for(path.stat().st_size),
            # Kept with the upload: a resume must cut the blob exactly as it was announced.
            "part_size": PART_SIZE,
        }
        # The original's own name and time, read before its bytes: the intake's statement.
        mtime = int(path.stat().st_mtime)
        state["upload_id"] = self._create_upload(ctx, state)
        fd = os.open(blob_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out, path.open("rb") as src, \
                self.session.bar(f"put {path.name}", state["blob_size"]) as bar:
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
            now = self.session.now()
            # The hash is of the bytes that were read and encrypted: the content's own hash.
            intake = IntakeRecord(
                sha256=res.plaintext_sha256, original_name=clean_original_name(path.name),
                original_mtime=mtime if mtime >= 0 else None,
                taken_in_by=self.session.identity().user_id, taken_in_at=now,
                source=self._intake_text[0], note=self._intake_text[1],
                client_version=client_version())
            meta = crypto.FileMetadata(name=name, size=res.plaintext_size,
                                       sha256=res.plaintext_sha256, media_type=media_type,
                                       client_time=now, path=case_path, intake=intake)
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
            self._transfers().save(key, state)
            sender.wait()
        return state

    def _abort(self, ctx: CaseContext, state: dict[str, Any]) -> None:
        """Tell the server to drop an upload this client will not finish (best effort)."""
        with contextlib.suppress(ApiError, VaultError):
            self.session.api.abort_upload(ctx.case_id, state["upload_id"])

    def _already_completed(self, ctx: CaseContext,
                           state: dict[str, Any]) -> dict[str, Any] | None:
        """This exact upload as a verified version of the case, with its receipt, or None."""
        for v in self.files.versions(ctx):
            if v.get("file_id") == state["file_id"] and v.get("version") == state["version"]:
                manifest, _, _ = self.files.verify(ctx, v)
                me = self.session.identity().user_id
                if manifest.blob_sha256 != state["blob_sha256"] or manifest.uploader != me:
                    return None
                self.files.record_seen(ctx, {state["file_id"]: (state["version"], False)})
                expect = {"actor_id": me, "action": Action.FILE_UPLOADED,
                          "case_id": ctx.case_id, "file_id": state["file_id"]}
                # The reply with the log index was lost: find our own entry in the log (it
                # lies after the checkpoint pinned before completing) and prove it instead.
                log = self.session.audit_log()
                try:
                    index = log.find_own_entry(expect, {"version": state["version"]},
                                               start=int(state.get("log_from", 0)))
                except AuditVerificationError as exc:
                    raise audit_failure(exc, f"entry of your {Action.FILE_UPLOADED}") from exc
                self.cases.receipt(index, expect=expect, detail={"version": state["version"]})
                return _result(state)
        return None

    def _create_upload(self, ctx: CaseContext, state: dict[str, Any]) -> str:
        reply = self.session.api.create_upload(ctx.case_id, {
            "file_id": state["file_id"], "version": state["version"],
            "total_size": state["blob_size"], "part_size": _part_size(state)})
        return str(reply["upload_id"])

    def _part_request(self, ctx: CaseContext, state: dict[str, Any]) -> Callable[..., None]:
        # The session's client is opened here, before the sending threads share it.
        api, upload_id = self.session.api, state["upload_id"]

        def send(number: int, body: Any, digest: str, length: int) -> None:
            api.upload_part(ctx.case_id, upload_id, number, body, sha256=digest, length=length)
        return send

    def _send_parts(self, ctx: CaseContext, state: dict[str, Any], blob_path: Path,
                    label: str) -> None:
        """Resume: send the parts the server lacks, each checked against its recorded hash."""
        status = self.session.api.upload_status(ctx.case_id, state["upload_id"])
        have = {p["part_number"]: p["sha256"] for p in status.get("parts", [])}
        total, part_size = int(state["blob_size"]), _part_size(state)
        count = -(-total // part_size)
        with self.session.bar(f"put {label}", total) as bar:
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
        identity = self.session.identity()
        # Where a lost reply's log entry will be looked for: after the checkpoint pinned now.
        pinned = self.session.audit_log().pinned()
        state["log_from"] = pinned[0].size if pinned else 0
        self._transfers().save(key, state)

        def complete(ctx: CaseContext) -> dict[str, Any]:
            body = manifest_body(
                case_id=ctx.case_id, file_id=state["file_id"], version=state["version"],
                generation=state["generation"], membership_seq=ctx.state.head.seq,
                blob_size=state["blob_size"], blob_sha256=state["blob_sha256"],
                meta_hash=sha256_hex(b64d(state["encrypted_metadata"])),
                wrapped_key_hash=sha256_hex(b64d(state["wrapped_key"])),
                uploader=identity.user_id, time=self.session.now())
            return self.session.api.complete_upload(ctx.case_id, state["upload_id"], {
                "manifest": identity.sign(LABEL_MANIFEST, body),
                "encrypted_metadata": state["encrypted_metadata"],
                "wrapped_key": state["wrapped_key"]})

        try:
            reply = complete(ctx)
        except MembershipStale:
            # Another owner changed the membership since the load: reload and sign once more.
            # Under a new key generation the file key was wrapped under a key that may be a
            # removed member's: drop this upload, and the next `put` encrypts afresh.
            ctx = self.cases.load(ctx.case_id)
            if ctx.generation != state["generation"] or not ctx.state.may_upload(ctx.me):
                self._abort(ctx, state)
                raise
            reply = complete(ctx)
        self.cases.receipt(
            field(reply, "log_index"),
            expect={"action": Action.FILE_UPLOADED, "case_id": ctx.case_id,
                    "file_id": state["file_id"]},
            detail={"version": state["version"]})
        self.files.record_seen(ctx, {state["file_id"]: (state["version"], False)})
        return _result(state)


def _intake_text(source: str, note: str) -> tuple[str, str]:
    """`--source` and `--note` as the intake record takes them, or a VaultError naming why."""
    source, note = (unicodedata.normalize("NFC", t) for t in (source, note))
    for label, value, bound in (("--source", source, MAX_SOURCE_CHARS),
                                ("--note", note, MAX_NOTE_CHARS)):
        if not is_clean_text(value, max_chars=bound):
            raise VaultError(f"{label} is text of at most {bound} characters, without "
                             "control or invisible formatting characters")
    return source, note


def _result(state: dict[str, Any]) -> dict[str, Any]:
    result = {k: state[k] for k in ("file_id", "version", "name", "size", "sha256")}
    return {**result, "path": state.get("path") or state["name"]}
