"""A case's files as this client believes them: the verified list of versions.

Every version the server lists is checked before it is used: the manifest signature against
the uploader's pinned key and upload rights at the manifest's point of the replayed membership
log, the hashes of the encrypted metadata and wrapped key against the manifest, then the
metadata is decrypted. Deletions count only under a signed tombstone, and the listing is held
against what this client verified before (client.files.history) so a server cannot roll a file
back or hide it. Paging checks are in client.files.paging.
"""

from __future__ import annotations

import hashlib
from typing import Any

from client import crypto
from client.cases import CaseContext, CaseOps, iso
from client.errors import VaultError
from client.files import paging
from client.files.folders import entry_path
from client.files.history import check_listing
from client.session import Session
from vault.protocol.encoding import EncodingError, b64d
from vault.protocol.membership import verify_tombstone
from vault.protocol.records import Manifest, RecordError


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class CaseFiles:
    """The verified file list of a case, over a Session."""

    def __init__(self, session: Session, cases: CaseOps | None = None) -> None:
        self.session = session
        self.cases = cases or CaseOps(session)

    def versions(self, ctx: CaseContext) -> list[dict[str, Any]]:
        versions = paging.fetch_all_versions(
            lambda limit, after: self.session.api.files_page(ctx.case_id, limit=limit,
                                                             after=after),
            case_id=ctx.case_id)
        # Before anything is used: the listing must not hide what this client verified.
        check_listing(self.session.keystore.files_seen(ctx.case_id), versions)
        return versions

    def record_seen(self, ctx: CaseContext, seen: dict[str, tuple[int, bool]]) -> None:
        self.session.keystore.record_files_seen(ctx.case_id, seen)

    def verify(self, ctx: CaseContext, v: dict[str, Any]) -> tuple[Manifest, bytes,
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
        if (sha256_hex(enc_meta) != manifest.meta_hash
                or sha256_hex(wrapped) != manifest.wrapped_key_hash):
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

    def deleted(self, ctx: CaseContext, v: dict[str, Any]) -> bool:
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

    def latest(self, ctx: CaseContext) -> dict[str, dict[str, Any]]:
        latest: dict[str, dict[str, Any]] = {}
        for v in self.versions(ctx):
            fid = v.get("file_id")
            if fid not in latest or v.get("version", 0) > latest[fid].get("version", 0):
                latest[fid] = v
        deleted = {fid for fid, v in latest.items() if self.deleted(ctx, v)}
        self.record_seen(ctx, {fid: (0, True) for fid in deleted})
        return {fid: v for fid, v in latest.items() if fid not in deleted}

    def ls(self, case_id: str) -> list[dict[str, Any]]:
        ctx = self.cases.load(case_id)
        out, seen = [], {}
        trust: dict[str, str] = {}  # per uploader: the pins are read once, not once per file
        for fid, v in sorted(self.latest(ctx).items()):
            manifest, _, meta = self.verify(ctx, v)
            seen[fid] = (manifest.version, False)
            if manifest.uploader not in trust:
                trust[manifest.uploader] = self.session.trust.trust_state(manifest.uploader,
                                                                          ctx.me)
            out.append({"file_id": fid, "version": manifest.version, "name": meta.name,
                        "size": meta.size, "sha256": meta.sha256,
                        "uploaded_by": ctx.username(manifest.uploader),
                        "uploaded_by_trust": trust[manifest.uploader],
                        "uploaded_at": iso(manifest.time), "path": entry_path(meta)})
        self.record_seen(ctx, seen)
        return sorted(out, key=lambda r: (r["name"], r["file_id"]))
