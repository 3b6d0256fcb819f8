"""`export`: the chosen files of a case (latest versions) as a court bundle, a BagIt bag.

Every file is downloaded, verified and decrypted as `get` does it (client.files.bulk), then
verified once more from the listing to take its manifest, encrypted metadata and file key; a
file that changed between the two is refused rather than bundled with another version's
evidence. The case's audit entries are read from the server, and only those of the exported
files are kept, each with its inclusion proof at one checkpoint that extends the pinned one.
The bag is written into a staging folder beside DIR, verified with `verify-bundle`'s own code,
and only then renamed to DIR: an export that does not verify leaves nothing behind.

A bundle names nothing about the files left out: their manifests, audit entries and names stay
out, and the membership log it must carry holds no file names. It discloses the exported files'
keys (to open their metadata offline) and nothing else of the case's secrets.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import bagit

from client import crypto
from client.api import LOG_ENTRIES, LOG_INCLUSION_PROOF, field
from client.auditlog import audit_failure
from client.cases import CaseContext
from client.errors import AuditVerificationError, VaultError
from client.files import folders
from client.files.bulk import BulkDownloads
from client.legal import verify as v
from client.legal.report import custody_report
from client.logrows import RowRejected, read_row
from vault.protocol import merkle
from vault.protocol.checkpoint import Checkpoint
from vault.protocol.encoding import b64d, b64e
from vault.protocol.ids import is_valid_id
from vault.protocol.paths import is_inside
from vault.protocol.records import parse_manifest

_PAGE = 1000


class Exports(BulkDownloads):
    """Write court bundles over a Session."""

    def export(self, case_id: str, *, output: Path, file_ids: list[str] | None = None,
               folder: str | None = None) -> dict[str, Any]:
        output = Path(output)
        if output.exists() or output.is_symlink():
            raise VaultError(f"{output} already exists; a bundle is written into a new "
                             "directory")
        for fid in file_ids or ():
            if not is_valid_id(fid):
                raise VaultError(f"{fid!r} is not a file id (32 hex digits)")
        ctx = self.cases.load(case_id)
        chosen = self._choose(ctx, file_ids, folder)
        output.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".export-", dir=output.parent))
        try:
            result = self.get_many(case_id, output=staging, file_ids=sorted(chosen))
            if result.failed:
                bad = ", ".join(f["file_id"] for f in result.failed)
                if result.integrity_failed:
                    raise crypto.IntegrityError(f"file(s) {bad}")
                raise VaultError(f"file(s) {bad} could not be exported")
            files, metadata = self._evidence(ctx, chosen, result.written)
            self._bag(ctx, staging, files, metadata)
            summary = v.verify_bundle(staging)
            staging.rename(output)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return {"case_id": case_id, "path": str(output), "files": summary["files"],
                "checkpoint": summary["checkpoint"]}

    def _choose(self, ctx: CaseContext, file_ids: list[str] | None,
                folder: str | None) -> dict[str, dict[str, Any]]:
        latest = self.files.latest(ctx)
        if file_ids:
            missing = [fid for fid in file_ids if fid not in latest]
            if missing:
                raise VaultError(f"no file {missing[0]} in this case")
            return {fid: latest[fid] for fid in file_ids}
        within = folders.folder_arg(folder, "--folder") if folder is not None else ""
        chosen = {}
        for fid, listed in latest.items():
            _, _, meta = self.files.verify(ctx, listed)
            if is_inside(within, meta.case_path):
                chosen[fid] = listed
        if not chosen:
            raise VaultError("no file to export" + (f" in {within}" if within else ""))
        return chosen

    def _evidence(self, ctx: CaseContext, chosen: dict[str, dict[str, Any]],
                  written: list[dict[str, Any]]
                  ) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
        """Per file: manifest, encrypted metadata, file key and proven audit entries; and
        the opened metadata for the report."""
        latest = self.files.latest(ctx)
        by_id = {w["file_id"]: w for w in written}
        files, metadata = [], {}
        for fid in sorted(chosen):
            listed = latest.get(fid)
            if listed is None:
                raise VaultError(f"file {fid} was deleted during the export; nothing written")
            manifest, file_key, meta = self.files.verify(ctx, listed)
            w = by_id.get(fid)
            if w is None or w["version"] != manifest.version or w["sha256"] != meta.sha256:
                raise VaultError(f"file {fid} changed during the export; try again")
            files.append({"file_id": fid, "version": manifest.version, "path": meta.case_path,
                          "manifest": manifest.signed,
                          "encrypted_metadata": listed["encrypted_metadata"],
                          "file_key": b64e(file_key), "audit": []})
            metadata[fid] = {"sha256": meta.sha256, "size": meta.size,
                             "intake": meta.intake.to_json() if meta.intake else None}
        log = self.session.audit_log()
        try:
            head = log.refresh()
            self._proven_entries(ctx.case_id, head, {f["file_id"]: f for f in files})
        except AuditVerificationError as exc:
            raise audit_failure(exc, f"of case {ctx.case_id}") from exc
        return files, metadata

    def _proven_entries(self, case_id: str, head: Checkpoint,
                        files: dict[str, dict[str, Any]]) -> None:
        """The exported files' entries of the case below `head`, each with its proof; the
        source address openings are left out (they are the lawyers' addresses)."""
        api = self.session.api
        start: int | None = 0
        while start is not None:
            reply = api.get(LOG_ENTRIES, case_id=case_id, start=start, end=head.size,
                            limit=_PAGE)
            rows = field(reply, "entries")
            if not isinstance(rows, list):
                raise AuditVerificationError("the server sent a malformed entry list")
            for row in rows:
                index = row.get("index") if isinstance(row, dict) else None
                if not isinstance(index, int) or not start <= index < head.size:
                    raise AuditVerificationError("the server sent an entry outside the range")
                start = index + 1
                kept = {"index": index, "entry": row.get("entry"), "body": row.get("body")}
                try:
                    entry, record = read_row(kept, index)
                except RowRejected as exc:
                    raise AuditVerificationError(exc.problem) from exc
                target = files.get(record.get("file_id"))
                if record.get("case_id") != case_id or target is None:
                    continue  # another file's entry: a bundle says nothing about it
                proof = field(api.get(LOG_INCLUSION_PROOF, index=index, size=head.size),
                              "proof")
                hashes = [b64d(h) for h in proof] if isinstance(proof, list) else []
                if not merkle.verify_inclusion(merkle.leaf_hash(entry), index, head.size,
                                               hashes, head.root_hash):
                    raise AuditVerificationError(
                        f"entry {index} is not in the signed log of size {head.size}")
                target["audit"].append({**kept, "proof": proof})
            nxt = reply.get("next")
            start = nxt if isinstance(nxt, int) and nxt < head.size and rows else None

    def _bag(self, ctx: CaseContext, root: Path, files: list[dict[str, Any]],
             metadata: dict[str, dict[str, Any]]) -> None:
        log = self.session.audit_log()
        pinned = log.pinned()
        assert pinned is not None  # refreshed in _evidence
        head, note = pinned
        verifier = log.verifier()
        # The signers only: the membership log's authors and subjects (its replay needs them)
        # and the uploaders of the exported versions.
        signers = {e.author for e in ctx.state.entries} | {e.subject for e in ctx.state.entries}
        signers |= {parse_manifest(f["manifest"]).uploader for f in files}
        identities = {uid: ctx.identities[uid] for uid in sorted(signers)
                      if uid in ctx.identities}
        exported_at = int(time.time())
        bagit.make_bag(str(root), bag_info={
            "Source-Organization": "CaseVault export",
            "External-Description": "Court bundle of files of one case, with the signed "
                                    "records that bind them to their uploaders and to the "
                                    "audit log. Verify with `casevault verify-bundle`.",
            "External-Identifier": f"casevault case {ctx.case_id}",
            "Bagging-Date": time.strftime("%Y-%m-%d", time.gmtime(exported_at)),
        }, checksums=["sha256", "sha512"])
        tag = root / v.TAG_DIR
        tag.mkdir()
        me = ctx.identities[ctx.me]
        bundle = {"format": v.FORMAT, "case_id": ctx.case_id, "exported_at": exported_at,
                  "exported_by": {"user_id": me.user_id, "username": me.username},
                  "files": files}
        _write(root / v.BUNDLE_JSON, json.dumps(bundle, indent=1, sort_keys=True))
        _write(root / v.MEMBERSHIP_JSON,
               json.dumps([e.signed for e in ctx.state.entries], indent=1))
        _write(root / v.IDENTITIES_JSON, json.dumps({
            uid: {"record": r.signed, "username": r.username,
                  "safety_number": r.safety_number} for uid, r in identities.items()},
            indent=1, sort_keys=True))
        _write(root / v.CHECKPOINT_NOTE, note)
        _write(root / v.LOG_VKEY, verifier.vkey() + "\n")
        for rel, data in v.expert_files(files=files, membership=[e.signed for e in
                                                                ctx.state.entries],
                                        identities=identities, note=note,
                                        verifier=verifier).items():
            path = root / v.OPENSSL_DIR / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        _write(root / v.REPORT_HTML, custody_report(
            bundle=bundle, root=root, identities=identities, checkpoint=head,
            vkey=verifier.vkey(), case_state=ctx.state, metadata=metadata))
        # The tag manifests are written last, over every tag file above.
        bagit.Bag(str(root)).save()


def _write(path: Path, text: str) -> None:
    path.write_text(text, "utf-8")
