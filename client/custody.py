"""Chain of custody of one file (DESIGN.md section 8): its intake records, its versions and
every verified audit event about it, each with its log index.

Nothing here is the server's word. The audit entries are proven included under the checkpoint
this client pinned, first, as `audit` does; each version's manifest is verified against its
uploader's pinned key and rights, and its intake record (sealed in the metadata the manifest
covers) must name that uploader and claim a time no later than the log's record of the upload
(vault.protocol.intake.check_intake_origin). Anything that does not fit is an IntegrityError.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from client import crypto
from client.auditlog import audit_failure
from client.cases import CaseContext, CaseOps, check_case_id, iso
from client.errors import AuditVerificationError, VaultError
from client.files.folders import entry_path
from client.files.listing import CaseFiles
from client.session import Session
from vault.protocol.events import Action
from vault.protocol.ids import is_valid_id
from vault.protocol.intake import IntakeError, IntakeRecord, check_intake_origin

# The case-wide events that bear on every file of the case.
_CASE_EVENTS = frozenset({Action.CASE_HOLD_PLACED, Action.CASE_HOLD_RELEASED})


class Custody:
    """The verified chain of custody of a file, over a Session."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.cases = CaseOps(session)
        self.files = CaseFiles(session, self.cases)

    def show(self, case_id: str, file_id: str) -> dict[str, Any]:
        check_case_id(case_id)
        if not is_valid_id(file_id):
            raise VaultError(f"{file_id!r} is not a file id (32 hex digits)")
        ctx = self.cases.load(case_id)
        # The log first: a failed verification shows nothing at all.
        try:
            entries = self.session.audit_log().case_entries(case_id)
        except AuditVerificationError as exc:
            raise audit_failure(exc, f"of case {case_id}") from exc
        from client.holds import check_holds_kept  # client.holds builds on client.cases

        check_holds_kept(ctx, entries)
        rows = sorted((v for v in self.files.versions(ctx) if v.get("file_id") == file_id),
                      key=lambda v: v.get("version", 0))
        if not rows:
            raise VaultError(f"no file {file_id} in this case")
        uploads = _upload_leaves(entries, file_id)
        trust: dict[str, str] = {}
        versions = []
        for v in rows:
            manifest, _, meta = self.files.verify(ctx, v)
            leaf = uploads.get(manifest.version)
            if leaf is None or leaf["actor_id"] != manifest.uploader:
                raise crypto.IntegrityError(
                    f"custody of file {file_id}: the audit log has no upload of version "
                    f"{manifest.version} by its signer")
            if meta.intake is not None:
                try:
                    check_intake_origin(meta.intake, uploader=manifest.uploader,
                                        logged_at=leaf["time"])
                except IntakeError as exc:
                    raise crypto.IntegrityError(
                        f"intake record of file {file_id} version {manifest.version} "
                        f"({exc})") from exc
            who = manifest.uploader
            if who not in trust:
                trust[who] = self.session.trust.trust_state(who, ctx.me)
            versions.append({
                "version": manifest.version, "uploaded_by": ctx.username(who),
                "uploaded_by_trust": trust[who], "uploaded_at": iso(manifest.time),
                "logged_at": iso(leaf["time"]), "log_index": leaf["index"],
                "size": meta.size, "sha256": meta.sha256, "path": entry_path(meta),
                "intake": _intake_json(meta.intake, ctx),
            })
        if rows[-1].get("deleted"):
            self.files.deleted(ctx, rows[-1])  # a deletion counts only under a signed tombstone
        return {"file_id": file_id, "path": versions[-1]["path"],
                "intake": versions[-1]["intake"], "versions": versions,
                "events": self._events(ctx, entries, file_id)}

    def _events(self, ctx: CaseContext, entries: list[dict[str, Any]],
                file_id: str) -> list[dict[str, Any]]:
        events = []
        states: dict[str, str] = {}
        for e in entries:
            record = e["record"]
            if record.get("file_id") != file_id and record.get("action") not in _CASE_EVENTS:
                continue
            actor_id = record.get("actor_id")
            actor, trust = None, None
            if isinstance(actor_id, str) and actor_id in ctx.identities:
                actor = ctx.identities[actor_id].username
                if actor_id not in states:
                    states[actor_id] = self.session.trust.trust_state(actor_id, ctx.me)
                trust = states[actor_id]
            detail = record.get("detail") if isinstance(record.get("detail"), dict) else {}
            version = detail.get("version")
            time = _leaf_seconds(record.get("time"))
            events.append({
                "index": e["index"], "time": None if time is None else iso(time),
                "actor": actor, "actor_trust": trust, "action": record.get("action"),
                "version": version if isinstance(version, int) else None,
            })
        return events


def _upload_leaves(entries: list[dict[str, Any]], file_id: str) -> dict[int, dict[str, Any]]:
    """version -> {index, actor_id, time} of the verified upload entries of the file."""
    out: dict[int, dict[str, Any]] = {}
    for e in entries:
        record = e["record"]
        detail = record.get("detail") if isinstance(record.get("detail"), dict) else {}
        version, time = detail.get("version"), _leaf_seconds(record.get("time"))
        if (record.get("action") == Action.FILE_UPLOADED and record.get("file_id") == file_id
                and isinstance(version, int) and time is not None and version not in out):
            out[version] = {"index": e["index"], "actor_id": record.get("actor_id"),
                            "time": time}
    return out


def _leaf_seconds(value: Any) -> int | None:
    """The server time of a leaf in whole seconds: format-1 leaves carry seconds, format-2
    leaves 'YYYY-MM-DDTHH:MM:SS.ffffffZ' (already checked by the leaf parser)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
                tzinfo=UTC).timestamp())
        except ValueError:
            return None
    return None


def _intake_json(intake: IntakeRecord | None, ctx: CaseContext) -> dict[str, Any] | None:
    """The intake as people read it: the taker by username, times in ISO 8601 (UTC)."""
    if intake is None:
        return None  # a version an older client uploaded carries none
    return {
        "sha256": intake.sha256, "original_name": intake.original_name,
        "original_mtime": None if intake.original_mtime is None else iso(intake.original_mtime),
        "taken_in_by": ctx.username(intake.taken_in_by), "taken_in_at": iso(intake.taken_in_at),
        "source": intake.source, "note": intake.note, "client_version": intake.client_version,
    }


def file_paths(session: Session, ctx: CaseContext) -> dict[str, str]:
    """file id -> folder path and name of its latest version, decrypted here, for `audit`.

    A convenience beside the verified log: a file this client cannot verify or open (a key
    generation it lacks, a listing that fails its checks) is left unnamed here, and the
    commands that use the file report why.
    """
    files = CaseFiles(session)
    try:
        versions = files.versions(ctx)
    except (VaultError, crypto.IntegrityError):
        return {}
    latest: dict[str, dict[str, Any]] = {}
    for v in versions:
        fid = v.get("file_id")
        if isinstance(fid, str) and v.get("version", 0) >= latest.get(fid, {}).get("version", 0):
            latest[fid] = v
    paths = {}
    for fid, v in latest.items():
        try:
            _, _, meta = files.verify(ctx, v)
        except (VaultError, crypto.IntegrityError):
            continue
        paths[fid] = entry_path(meta)
    return paths
