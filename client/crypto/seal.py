"""Case keys and what they protect: grants (HPKE), generation links, case and file metadata,
file-key wraps. Every `info` and associated data carries a cv1 label and the coordinates it
belongs to, so nothing sealed for one place opens in another.
"""

from __future__ import annotations

import json
import secrets
import time as _time
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke

from client.crypto import _aead
from client.crypto.errors import IntegrityError
from client.crypto.kdf import subkey
from client.crypto.keys import Identity, hpke_public_key
from vault.protocol.encoding import FORMAT_VERSION, canonical_json
from vault.protocol.intake import IntakeError, IntakeRecord, parse_intake
from vault.protocol.membership import MembershipState, verify_grant, verify_manifest
from vault.protocol.paths import PathError, normalize_case_path, split_path
from vault.protocol.records import (
    LABEL_GRANT,
    IdentityRecord,
    Manifest,
    RecordError,
    grant_body,
)

CASE_KEY_BYTES = 32
FILE_KEY_BYTES = 32

LABEL_GRANT_SEAL = "cv1/grant-seal"
LABEL_KEY_LINK = "cv1/key-link"
LABEL_CASE_META = "cv1/case-meta"
LABEL_FILE_KEY = "cv1/file-key"
LABEL_FILE_META = "cv1/file-meta"
PERSON_FILE_META = b"cv1/file_meta"

HPKE_SUITE = hpke.Suite(hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)
_META_MAX = 64 * 1024


def new_case_key() -> bytes:
    return secrets.token_bytes(CASE_KEY_BYTES)


def new_file_key() -> bytes:
    return secrets.token_bytes(FILE_KEY_BYTES)


def _check_key(key: bytes, size: int = 32) -> None:
    if not isinstance(key, bytes) or len(key) != size:
        raise ValueError(f"a key is {size} bytes")


# ---------------------------------------------------------------- grants


def grant_info(case_id: str, generation: int, member: str, member_fp: str) -> bytes:
    """HPKE info: label, case, generation, member and the member's key fingerprint."""
    return _aead.labelled(LABEL_GRANT_SEAL, case_id, generation, member, member_fp)


def seal_grant(
    *,
    case_key: bytes,
    case_id: str,
    generation: int,
    member: IdentityRecord,
    granter: Identity,
    now: int | None = None,
) -> dict[str, str]:
    """Seal a case key generation to a member and sign the grant as the granting owner."""
    _check_key(case_key)
    info = grant_info(case_id, generation, member.user_id, member.fingerprint_hex)
    sealed = HPKE_SUITE.encrypt(case_key, hpke_public_key(member.kem_pk), info=info)
    body = grant_body(
        case_id=case_id,
        generation=generation,
        member=member.user_id,
        member_fp=member.fingerprint_hex,
        sealed_key=sealed,
        granter=granter.user_id,
        time=int(_time.time()) if now is None else now,
    )
    return granter.sign(LABEL_GRANT, body)


def open_grant(
    signed_grant: object,
    *,
    identity: Identity,
    state: MembershipState,
    identities: Mapping[str, IdentityRecord],
    generation: int | None = None,
) -> bytes:
    """Verify a grant against the replayed membership log, then open it with our key."""
    try:
        grant = verify_grant(signed_grant, state, identities)
    except RecordError as exc:
        raise IntegrityError("key grant") from exc
    own_fp = identity.record().fingerprint_hex
    if grant.member != identity.user_id or grant.member_fp != own_fp:
        raise IntegrityError("key grant")
    if generation is not None and grant.generation != generation:
        raise IntegrityError("key grant")
    info = grant_info(grant.case_id, grant.generation, grant.member, grant.member_fp)
    try:
        key = HPKE_SUITE.decrypt(grant.sealed_key, identity.kem_private, info=info)
    except (InvalidTag, ValueError) as exc:
        raise IntegrityError("key grant") from exc
    if len(key) != CASE_KEY_BYTES:
        raise IntegrityError("key grant")
    return key


# ---------------------------------------------------------------- generation links


def _link_ad(case_id: str, new_generation: int) -> bytes:
    return _aead.labelled(LABEL_KEY_LINK, case_id, new_generation - 1, new_generation)


def make_key_link(
    *, new_key: bytes, old_key: bytes, case_id: str, new_generation: int, nonce: bytes | None = None
) -> bytes:
    """Generation g+1 carries generation g, so members keep reading older files."""
    _check_key(new_key)
    _check_key(old_key)
    if new_generation < 1:
        raise ValueError("generation 0 has no predecessor")
    return _aead.seal(new_key, old_key, _link_ad(case_id, new_generation), nonce=nonce)


def open_key_link(link: bytes, *, new_key: bytes, case_id: str, new_generation: int) -> bytes:
    key = _aead.open_(new_key, link, _link_ad(case_id, new_generation), what="key link")
    if len(key) != CASE_KEY_BYTES:
        raise IntegrityError("key link")
    return key


# ---------------------------------------------------------------- case metadata


@dataclass(frozen=True)
class CaseMetadata:
    name: str
    description: str = ""


def encrypt_case_metadata(
    meta: CaseMetadata,
    *,
    case_key: bytes,
    case_id: str,
    generation: int,
    nonce: bytes | None = None,
) -> bytes:
    body = {"v": FORMAT_VERSION, "name": meta.name, "description": meta.description}
    ad = _aead.labelled(LABEL_CASE_META, case_id, generation)
    return _aead.seal(case_key, canonical_json(body), ad, nonce=nonce)


def decrypt_case_metadata(
    blob: bytes, *, case_key: bytes, case_id: str, generation: int
) -> CaseMetadata:
    ad = _aead.labelled(LABEL_CASE_META, case_id, generation)
    body = _decode(_aead.open_(case_key, blob, ad, what="case metadata"), "case metadata")
    if set(body) != {"v", "name", "description"} or not all(
        isinstance(body[k], str) for k in ("name", "description")
    ):
        raise IntegrityError("case metadata")
    return CaseMetadata(body["name"], body["description"])


def _decode(plaintext: bytes, what: str) -> dict:
    if len(plaintext) > _META_MAX:
        raise IntegrityError(what)
    try:
        body = json.loads(plaintext)
    except (ValueError, UnicodeDecodeError) as exc:
        raise IntegrityError(what) from exc
    if not isinstance(body, dict) or body.get("v") != FORMAT_VERSION:
        raise IntegrityError(what)
    return body


# ---------------------------------------------------------------- file key and metadata


def _file_key_ad(case_id: str, file_id: str, version: int, generation: int) -> bytes:
    return _aead.labelled(LABEL_FILE_KEY, case_id, file_id, version, generation)


def wrap_file_key(
    file_key: bytes,
    *,
    case_key: bytes,
    case_id: str,
    file_id: str,
    version: int,
    generation: int,
    nonce: bytes | None = None,
) -> bytes:
    _check_key(file_key)
    ad = _file_key_ad(case_id, file_id, version, generation)
    return _aead.seal(case_key, file_key, ad, nonce=nonce)


def unwrap_file_key(
    wrapped: bytes, *, case_key: bytes, case_id: str, file_id: str, version: int, generation: int
) -> bytes:
    ad = _file_key_ad(case_id, file_id, version, generation)
    key = _aead.open_(case_key, wrapped, ad, what="file key")
    if len(key) != FILE_KEY_BYTES:
        raise IntegrityError("file key")
    return key


@dataclass(frozen=True)
class FileMetadata:
    """The encrypted description of one file version.

    `path` (folder path + name inside the case, canonical per vault.protocol.paths) and `intake`
    (vault.protocol.intake) are optional: a record without them encodes byte for byte as before
    they existed, and a file without `path` sits at the case root under `name`. With `path`,
    `name` is its last segment; with `intake`, its SHA-256 is the content's.
    """

    name: str
    size: int
    sha256: str  # hex SHA-256 of the plaintext: the chain-of-custody hash
    media_type: str = "application/octet-stream"
    client_time: int = 0
    note: str = ""
    path: str | None = None
    intake: IntakeRecord | None = None

    def __post_init__(self) -> None:
        if self.path is not None:
            if normalize_case_path(self.path) != self.path:
                raise PathError("a metadata path is given in its canonical form")
            if split_path(self.path)[1] != self.name:
                raise PathError("the name is the last segment of the path")
        if self.intake is not None:
            if not isinstance(self.intake, IntakeRecord):
                raise TypeError("intake is an IntakeRecord")
            if self.intake.sha256 != self.sha256:
                raise IntakeError("the intake hash is not the content's hash")

    @property
    def case_path(self) -> str:
        """Where the file sits in the case: `path`, else `name` at the root (checked by the
        path rules; PathError for a legacy name that no path may hold)."""
        return normalize_case_path(self.path if self.path is not None else self.name)


_META_FIELDS = {
    "name": str,
    "size": int,
    "sha256": str,
    "media_type": str,
    "client_time": int,
    "note": str,
}
_META_OPTIONAL = frozenset({"path", "intake"})


def file_metadata_body(meta: FileMetadata) -> dict:
    """The plaintext record; absent optional fields are left out, not written as null."""
    body = {"v": FORMAT_VERSION, **{k: getattr(meta, k) for k in _META_FIELDS}}
    if meta.path is not None:
        body["path"] = meta.path
    if meta.intake is not None:
        body["intake"] = meta.intake.to_json()
    return body


def _parse_file_metadata(body: dict) -> FileMetadata:
    keys = set(body) - {"v"}
    if not set(_META_FIELDS) <= keys or not keys <= set(_META_FIELDS) | _META_OPTIONAL:
        raise IntegrityError("file metadata")
    for name, kind in _META_FIELDS.items():
        if not isinstance(body[name], kind) or isinstance(body[name], bool):
            raise IntegrityError("file metadata")
    if body["size"] < 0 or len(body["sha256"]) != 64:
        raise IntegrityError("file metadata")
    if "path" in body and not isinstance(body["path"], str):
        raise IntegrityError("file metadata")  # absent means the root; null is not a spelling
    try:
        # A path or intake the uploader (or a server replaying a record) chose is checked
        # here, before any caller can join the path under a local folder.
        return FileMetadata(
            **{k: body[k] for k in _META_FIELDS},
            path=body.get("path"),
            intake=parse_intake(body["intake"]) if "intake" in body else None,
        )
    except (PathError, IntakeError, TypeError) as exc:
        raise IntegrityError("file metadata") from exc


def _meta_key(file_key: bytes) -> bytes:
    _check_key(file_key)
    return subkey(file_key, PERSON_FILE_META)


def encrypt_file_metadata(
    meta: FileMetadata,
    *,
    file_key: bytes,
    case_id: str,
    file_id: str,
    version: int,
    nonce: bytes | None = None,
) -> bytes:
    body = file_metadata_body(meta)
    ad = _aead.labelled(LABEL_FILE_META, case_id, file_id, version)
    return _aead.seal(_meta_key(file_key), canonical_json(body), ad, nonce=nonce)


def decrypt_file_metadata(
    blob: bytes, *, file_key: bytes, case_id: str, file_id: str, version: int
) -> FileMetadata:
    ad = _aead.labelled(LABEL_FILE_META, case_id, file_id, version)
    body = _decode(
        _aead.open_(_meta_key(file_key), blob, ad, what="file metadata"), "file metadata"
    )
    return _parse_file_metadata(body)


# ---------------------------------------------------------------- manifests


def verify_download_manifest(
    signed: object,
    *,
    state: MembershipState,
    identities: Mapping[str, IdentityRecord],
    case_id: str,
    file_id: str,
    version: int | None = None,
) -> Manifest:
    """Check a manifest before download: uploader's pinned key, upload rights and generation at
    the named membership position, and that it is the file that was asked for."""
    try:
        return verify_manifest(
            signed, state, identities, case_id=case_id, file_id=file_id, version=version
        )
    except RecordError as exc:
        raise IntegrityError(f"manifest of file {file_id}") from exc
