"""`verify-bundle DIR`: check a court bundle offline, with no server and no account.

What is checked, in order (every problem found is named, not only the first):
- the bag (RFC 8493) with the `bagit` library: every payload and tag file against its manifests;
- the log checkpoint's signature against the included log key (vkey);
- every identity record's self-signature and the safety number printed beside it;
- the case's membership log: every signature, the hash chain and the authority rules (replayed);
- per file: the uploader's manifest signature and upload rights at the manifest's point of the
  log; the encrypted metadata against the manifest's hash; the metadata opened with the
  included file key; the plaintext SHA-256 it carries against the file under data/ (so a file
  swapped and re-bagged with fresh manifests is still caught: the signature binds the hash);
- per file: every audit entry proven included in the signed checkpoint, one of them the upload
  of this version carrying this very manifest;
- data/ holds exactly the exported files, and the files an expert verifies with openssl
  (casevault/openssl/) are exactly the bytes the records above sign.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import bagit
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from client.crypto import IntegrityError, decrypt_file_metadata
from client.errors import AuditVerificationError
from client.logrows import RowRejected, read_row
from vault.protocol import merkle
from vault.protocol.checkpoint import (
    Checkpoint,
    NoteError,
    NoteVerifier,
    open_checkpoint,
    parse_note,
)
from vault.protocol.encoding import EncodingError, b64d, signing_input
from vault.protocol.events import Action
from vault.protocol.membership import MembershipState, replay_membership, verify_manifest
from vault.protocol.records import (
    LABEL_MANIFEST,
    LABEL_MEMBERSHIP,
    IdentityRecord,
    RecordError,
    open_envelope,
    verify_identity_record,
)

FORMAT = "casevault-bundle/1"
TAG_DIR = "casevault"
BUNDLE_JSON = f"{TAG_DIR}/bundle.json"
MEMBERSHIP_JSON = f"{TAG_DIR}/membership.json"
IDENTITIES_JSON = f"{TAG_DIR}/identities.json"
CHECKPOINT_NOTE = f"{TAG_DIR}/checkpoint.txt"
LOG_VKEY = f"{TAG_DIR}/log.vkey"
REPORT_HTML = f"{TAG_DIR}/custody-report.html"
OPENSSL_DIR = f"{TAG_DIR}/openssl"
_READ = 1024 * 1024


class BundleNotVerified(IntegrityError):
    """The bundle failed one or more checks; `problems` names each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("court bundle")
        self.problems = problems
        self.args = ("court bundle failed verification: " + "; ".join(problems),)


def pem(sign_pk: bytes) -> bytes:
    """An Ed25519 public key as the PEM file openssl reads."""
    return Ed25519PublicKey.from_public_bytes(sign_pk).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def expert_files(*, files: list[dict[str, Any]], membership: list[Any],
                 identities: dict[str, IdentityRecord], note: str,
                 verifier: NoteVerifier) -> dict[str, bytes]:
    """The files under casevault/openssl/: each signature as raw bytes beside the exact
    message it signs and the signer's public key, so `openssl pkeyutl -verify` checks it."""
    out: dict[str, bytes] = {"log-key.pem": pem(verifier.public_key)}
    parsed = parse_note(note)
    sig = next(s for s in parsed.signatures
               if s.name == verifier.name and s.key_id == verifier.key_id)
    out["checkpoint.msg"] = parsed.text.encode("utf-8")
    out["checkpoint.sig"] = sig.signature
    for user_id, record in identities.items():
        out[f"keys/{user_id}.pem"] = pem(record.sign_pk)
    for f in files:
        env = open_envelope(LABEL_MANIFEST, f["manifest"])
        out[f"manifests/{f['file_id']}.msg"] = signing_input(env.label, env.body)
        out[f"manifests/{f['file_id']}.sig"] = env.sig
        out[f"metadata/{f['file_id']}.enc"] = b64d(f["encrypted_metadata"])
    for seq, signed in enumerate(membership):
        env = open_envelope(LABEL_MEMBERSHIP, signed)
        out[f"membership/{seq}.msg"] = signing_input(env.label, env.body)
        out[f"membership/{seq}.sig"] = env.sig
    return out


def file_sha256(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as fh:
        while chunk := fh.read(_READ):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


class _Checker:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.problems: list[str] = []

    def fail(self, problem: str) -> None:
        self.problems.append(problem)

    def read(self, rel: str, *, as_json: bool = True) -> Any:
        path = self.root / rel
        if not path.is_file() or path.is_symlink():
            raise BundleNotVerified([*self.problems, f"{rel} is missing"])
        try:
            text = path.read_text("utf-8")
            return json.loads(text) if as_json else text
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise BundleNotVerified([*self.problems, f"{rel} is malformed"]) from exc

    def bag(self) -> None:
        try:
            bag = bagit.Bag(str(self.root))
            if "sha256" not in bag.algorithms:
                self.fail("the bag has no SHA-256 payload manifest")
            bag.validate()
        except bagit.BagError as exc:
            self.fail(f"the bag does not validate ({str(exc)[:500]})")

    def checkpoint(self) -> tuple[NoteVerifier | None, Checkpoint | None, str]:
        vkey = self.read(LOG_VKEY, as_json=False).strip()
        note = self.read(CHECKPOINT_NOTE, as_json=False)
        try:
            verifier = NoteVerifier.from_vkey(vkey)
        except NoteError:
            self.fail(f"{LOG_VKEY} is not a log key")
            return None, None, note
        try:
            return verifier, open_checkpoint(note, verifier), note
        except NoteError:
            self.fail("the checkpoint is not signed by the included log key")
            return verifier, None, note

    def identities(self, raw: Any) -> dict[str, IdentityRecord]:
        out: dict[str, IdentityRecord] = {}
        for user_id, item in (raw or {}).items() if isinstance(raw, dict) else ():
            try:
                record = verify_identity_record(item["record"])
            except (RecordError, EncodingError, KeyError, TypeError):
                self.fail(f"the identity record of {user_id} is not validly self-signed")
                continue
            if (record.user_id != user_id or record.username != item.get("username")
                    or record.safety_number != item.get("safety_number")):
                self.fail(f"the identity of {user_id} does not match its record")
                continue
            out[user_id] = record
        return out

    def membership(self, entries: Any, identities: dict[str, IdentityRecord],
                   case_id: str) -> MembershipState | None:
        try:
            state = replay_membership(entries, identities)
        except (RecordError, EncodingError, TypeError) as exc:
            self.fail(f"the membership log does not verify ({exc})")
            return None
        if state.case_id != case_id:
            self.fail("the membership log is another case's")
            return None
        return state

    def file(self, f: dict[str, Any], case_id: str, state: MembershipState | None,
             identities: dict[str, IdentityRecord], head: Checkpoint | None) -> dict[str, Any]:
        file_id = f.get("file_id")
        label = f"file {file_id} ({f.get('path')})"
        summary: dict[str, Any] = {"file_id": file_id, "version": f.get("version"),
                                   "path": f.get("path")}
        manifest = None
        if state is not None:
            try:
                manifest = verify_manifest(f.get("manifest"), state, identities,
                                           case_id=case_id, file_id=file_id,
                                           version=f.get("version"))
            except (RecordError, EncodingError, TypeError, KeyError) as exc:
                self.fail(f"{label}: its signed manifest does not verify ({exc})")
        if manifest is not None:
            uploader = identities[manifest.uploader]
            summary.update(uploaded_by=uploader.username,
                           uploaded_by_safety_number=uploader.safety_number,
                           uploaded_at=manifest.time)
            self._content(f, manifest, label, summary)
            self._audit(f, manifest, case_id, head, label)
        return summary

    def _content(self, f: dict[str, Any], manifest: Any, label: str,
                 summary: dict[str, Any]) -> None:
        try:
            enc = b64d(f["encrypted_metadata"])
            key = b64d(f["file_key"])
        except (KeyError, TypeError, EncodingError):
            self.fail(f"{label}: its metadata record or file key is missing")
            return
        if hashlib.sha256(enc).hexdigest() != manifest.meta_hash:
            self.fail(f"{label}: its metadata is not the record the manifest signs")
            return
        try:
            meta = decrypt_file_metadata(enc, file_key=key, case_id=manifest.case_id,
                                         file_id=manifest.file_id, version=manifest.version)
            case_path = meta.case_path
        except (IntegrityError, ValueError):
            self.fail(f"{label}: its metadata does not open with the included file key")
            return
        if case_path != f.get("path"):
            self.fail(f"{label}: the signed metadata names another path ({case_path})")
            return
        payload = self.root / "data" / case_path
        if not payload.is_file() or payload.is_symlink():
            self.fail(f"{label}: data/{case_path} is missing")
            return
        sha256, size = file_sha256(payload)
        if sha256 != meta.sha256 or size != meta.size:
            self.fail(f"{label}: data/{case_path} is not the content the uploader signed "
                      f"(SHA-256 {sha256}, signed {meta.sha256})")
        summary.update(sha256=meta.sha256, size=meta.size,
                       intake=meta.intake.to_json() if meta.intake else None)

    def _audit(self, f: dict[str, Any], manifest: Any, case_id: str,
               head: Checkpoint | None, label: str) -> None:
        entries = f.get("audit") if isinstance(f.get("audit"), list) else []
        upload_seen = False
        signed = manifest.signed
        for item in entries:
            index = item.get("index") if isinstance(item, dict) else None
            if not isinstance(index, int):
                self.fail(f"{label}: an audit entry has no index")
                continue
            try:
                entry, record = read_row(item, index)
                proof = [b64d(h) for h in item["proof"]]
            except (RowRejected, AuditVerificationError, EncodingError, KeyError, TypeError):
                self.fail(f"{label}: audit entry {index} is malformed")
                continue
            if record.get("case_id") != case_id or record.get("file_id") != manifest.file_id:
                self.fail(f"{label}: audit entry {index} is about another file")
                continue
            if head is None or not (0 <= index < head.size and merkle.verify_inclusion(
                    merkle.leaf_hash(entry), index, head.size, proof, head.root_hash)):
                self.fail(f"{label}: audit entry {index} is not proven in the signed "
                          "checkpoint")
                continue
            detail = record.get("detail") if isinstance(record.get("detail"), dict) else {}
            if (record.get("action") == Action.FILE_UPLOADED
                    and detail.get("version") == manifest.version
                    and _envelope(record.get("signed_record")) == signed):
                upload_seen = True
        if not upload_seen:
            self.fail(f"{label}: no proven audit entry records the upload of this manifest")


def _envelope(value: Any) -> Any:
    """A logged signed record: an envelope (format 2) or its canonical JSON text (format 1)."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


def verify_bundle(root: Path) -> dict[str, Any]:
    """Check everything (module docstring); the summary, or BundleNotVerified naming each
    problem."""
    root = Path(root)
    if not root.is_dir():
        raise BundleNotVerified([f"{root} is not a directory"])
    check = _Checker(root)
    check.bag()
    bundle = check.read(BUNDLE_JSON)
    if not isinstance(bundle, dict) or bundle.get("format") != FORMAT:
        raise BundleNotVerified([*check.problems, f"{BUNDLE_JSON} is not a {FORMAT} index"])
    case_id = bundle.get("case_id")
    files = bundle.get("files") if isinstance(bundle.get("files"), list) else []
    verifier, head, note = check.checkpoint()
    raw_ids = check.read(IDENTITIES_JSON)
    identities = check.identities(raw_ids)
    entries = check.read(MEMBERSHIP_JSON)
    state = check.membership(entries, identities, case_id)
    summaries = [check.file(f, case_id, state, identities, head)
                 for f in files if isinstance(f, dict)]
    if not summaries:
        check.fail("the bundle lists no file")
    data = root / "data"
    present = {p.relative_to(data).as_posix() for p in data.rglob("*")
               if p.is_file() or p.is_symlink()} if data.is_dir() else set()
    extra = sorted(present - {s["path"] for s in summaries})
    if extra:
        check.fail(f"data/ holds file(s) no signed manifest covers: {', '.join(extra[:5])}")
    if verifier is not None and state is not None and not check.problems:
        _check_expert_files(check, files, entries, identities, note, verifier)
    if check.problems:
        raise BundleNotVerified(check.problems)
    assert head is not None and verifier is not None
    return {"verified": True, "case_id": case_id, "files": summaries,
            "checkpoint": {"origin": head.origin, "size": head.size},
            "log_key": verifier.vkey()}


def _check_expert_files(check: _Checker, files: list[Any], entries: list[Any],
                        identities: dict[str, IdentityRecord], note: str,
                        verifier: NoteVerifier) -> None:
    """casevault/openssl/ must hold exactly the derived bytes: an expert who checks a
    signature there checks the very record verify-bundle checked."""
    want = expert_files(files=files, membership=entries, identities=identities, note=note,
                        verifier=verifier)
    base = check.root / OPENSSL_DIR
    have = {p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file()} \
        if base.is_dir() else set()
    for rel in sorted(set(want) | have):
        path = base / rel
        if rel not in want or not path.is_file() or path.read_bytes() != want[rel]:
            check.fail(f"{OPENSSL_DIR}/{rel} is not what the signed records hold")
