"""Signed records of format cv1 that both the server and the client read.

Every record travels as `{"body": b64e(canonical_json(body)), "sig": b64e(signature)}` where the
signature is Ed25519 over `signing_input(label, body)`. Bodies carry `"v": "cv1"`; any other
version, a missing or extra field, a wrong type or a non-canonical encoding is a RecordError.
This module holds no content keys: sealed keys and key links are opaque bytes here.
The membership log replay lives in vault.protocol.membership.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

import nacl.exceptions
import nacl.signing

from vault.protocol.encoding import (
    FORMAT_VERSION,
    EncodingError,
    b64d,
    b64e,
    canonical_json,
    parse_canonical,
    signing_input,
)
from vault.protocol.ids import is_valid_id
from vault.protocol.text import is_clean_text
from vault.protocol.usernames import is_valid_username

LABEL_IDENTITY = "cv1/identity"
LABEL_MEMBERSHIP = "cv1/membership"
LABEL_GRANT = "cv1/grant"
LABEL_MANIFEST = "cv1/manifest"
LABEL_TOMBSTONE = "cv1/tombstone"

SIGN_PK_BYTES = 32
MLKEM768_PK_BYTES = 1184
X25519_PK_BYTES = 32
KEM_PK_BYTES = MLKEM768_PK_BYTES + X25519_PK_BYTES
SIG_BYTES = 64
MAX_USERNAME_CHARS = 64
MAX_OPAQUE_BYTES = 64 * 1024
MAX_HOLD_REASON_CHARS = 1000
ZERO_HASH = "0" * 64

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_INT_MAX = 2**63 - 1


class RecordError(Exception):
    """A record failed verification: bad shape, version, signature, chain or authority."""


@dataclass(frozen=True)
class Signed:
    """A parsed envelope: the label it was verified under, its body and the raw pieces."""

    label: str
    body: dict[str, Any]
    body_bytes: bytes
    sig: bytes

    def to_json(self) -> dict[str, str]:
        return {"body": b64e(self.body_bytes), "sig": b64e(self.sig)}

    @property
    def record_hash(self) -> str:
        """SHA-256 (hex) over the signed bytes and the signature: names this exact record."""
        return hashlib.sha256(signing_input(self.label, self.body) + self.sig).hexdigest()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------- envelope


def sign_record(label: str, body: dict[str, Any], signing_key: nacl.signing.SigningKey) -> dict:
    """Sign a body under a label; returns the JSON envelope."""
    if body.get("v") != FORMAT_VERSION:
        raise RecordError("record body must carry v=cv1")
    sig = signing_key.sign(signing_input(label, body)).signature
    return {"body": b64e(canonical_json(body)), "sig": b64e(sig)}


def open_envelope(label: str, signed: Any) -> Signed:
    """Parse an envelope without checking the signature (the signer is known only later)."""
    if label not in _FIELDS:
        raise RecordError("unknown record label")
    if not isinstance(signed, dict) or set(signed) != {"body", "sig"}:
        raise RecordError("a signed record has exactly the keys body and sig")
    try:
        body_bytes = b64d(signed["body"])
        sig = b64d(signed["sig"])
        body = parse_canonical(body_bytes)
    except EncodingError as exc:
        raise RecordError(f"malformed {label} record: {exc}") from exc
    if len(sig) != SIG_BYTES:
        raise RecordError("malformed signature")
    if body.get("v") != FORMAT_VERSION:
        raise RecordError("unsupported record version")
    _check_fields(label, body)
    return Signed(label=label, body=body, body_bytes=body_bytes, sig=sig)


def verify_signature(env: Signed, sign_pk: bytes) -> None:
    try:
        nacl.signing.VerifyKey(sign_pk).verify(signing_input(env.label, env.body), env.sig)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, TypeError) as exc:
        raise RecordError(f"bad signature on {env.label} record") from exc


# ---------------------------------------------------------------- field shapes


def _id(v: Any) -> bool:
    return is_valid_id(v)


def _uint(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= _INT_MAX


def _hex64(v: Any) -> bool:
    return isinstance(v, str) and bool(_HEX64.fullmatch(v))


def _username(v: Any) -> bool:
    # The server's own alphabet: a record naming anyone else is not one of its accounts.
    return is_valid_username(v)


def _b64(size: int | None = None, *, allow_empty: bool = False):
    def check(v: Any) -> bool:
        try:
            raw = b64d(v)
        except EncodingError:
            return False
        if size is not None:
            return len(raw) == size
        return (allow_empty or len(raw) > 0) and len(raw) <= MAX_OPAQUE_BYTES

    return check


def _one_of(*values: str):
    return lambda v: isinstance(v, str) and v in values


def _const(value: str):
    return lambda v: v == value


ROLES = ("owner", "editor", "viewer")
ACTIONS = ("create", "add", "remove", "role", "hold", "release")
# Legal hold entries name their author as subject; only `hold` carries a reason (SPEC 4.2.1).
HOLD_ACTIONS = ("hold", "release")
UPLOAD_ROLES = frozenset({"owner", "editor"})

_FIELDS: dict[str, dict[str, Any]] = {
    LABEL_IDENTITY: {
        "v": _const(FORMAT_VERSION),
        "user_id": _id,
        "username": _username,
        "sign_pk": _b64(SIGN_PK_BYTES),
        "kem_pk": _b64(KEM_PK_BYTES),
        "created_at": _uint,
    },
    LABEL_MEMBERSHIP: {
        "v": _const(FORMAT_VERSION),
        "case_id": _id,
        "seq": _uint,
        "prev_hash": _hex64,
        "action": _one_of(*ACTIONS),
        "subject": _id,
        "subject_fp": _hex64,
        "role": _one_of(*ROLES),
        "author": _id,
        "time": _uint,
        "generation": _uint,
        "key_link": _b64(allow_empty=True),
    },
    LABEL_GRANT: {
        "v": _const(FORMAT_VERSION),
        "case_id": _id,
        "generation": _uint,
        "member": _id,
        "member_fp": _hex64,
        "sealed_key": _b64(),
        "granter": _id,
        "time": _uint,
    },
    LABEL_MANIFEST: {
        "v": _const(FORMAT_VERSION),
        "case_id": _id,
        "file_id": _id,
        "version": _uint,
        "generation": _uint,
        "membership_seq": _uint,
        "blob_size": _uint,
        "blob_sha256": _hex64,
        "meta_hash": _hex64,
        "wrapped_key_hash": _hex64,
        "uploader": _id,
        "time": _uint,
    },
    LABEL_TOMBSTONE: {
        "v": _const(FORMAT_VERSION),
        "case_id": _id,
        "file_id": _id,
        "membership_seq": _uint,
        "deleter": _id,
        "time": _uint,
    },
}


# A hold entry is a membership entry plus its reason. Every other entry keeps exactly the
# fields it had before holds existed, so its bytes (and signatures) are unchanged.
_MEMBERSHIP_HOLD_FIELDS: dict[str, Any] = {
    **_FIELDS[LABEL_MEMBERSHIP],
    "reason": lambda v: is_clean_text(v, max_chars=MAX_HOLD_REASON_CHARS, allow_empty=False),
}


def _check_fields(label: str, body: dict[str, Any]) -> None:
    spec = _FIELDS[label]
    if label == LABEL_MEMBERSHIP and body.get("action") == "hold":
        spec = _MEMBERSHIP_HOLD_FIELDS
    if set(body) != set(spec):
        raise RecordError(f"{label} record has missing or unknown fields")
    for name, check in spec.items():
        if not check(body[name]):
            raise RecordError(f"{label} record has an invalid {name}")


# ---------------------------------------------------------------- identity


@dataclass(frozen=True)
class IdentityRecord:
    user_id: str
    username: str
    sign_pk: bytes
    kem_pk: bytes
    created_at: int
    fingerprint: bytes
    signed: dict[str, str]

    @property
    def fingerprint_hex(self) -> str:
        return self.fingerprint.hex()

    @property
    def safety_number(self) -> str:
        return safety_number(self.fingerprint)


def identity_body(
    *, user_id: str, username: str, sign_pk: bytes, kem_pk: bytes, created_at: int
) -> dict[str, Any]:
    body = {
        "v": FORMAT_VERSION,
        "user_id": user_id,
        "username": username,
        "sign_pk": b64e(sign_pk),
        "kem_pk": b64e(kem_pk),
        "created_at": created_at,
    }
    _check_fields(LABEL_IDENTITY, body)
    return body


def verify_identity_record(signed: Any) -> IdentityRecord:
    """Parse a self-signed identity record and check its signature."""
    env = open_envelope(LABEL_IDENTITY, signed)
    sign_pk = b64d(env.body["sign_pk"])
    verify_signature(env, sign_pk)
    return IdentityRecord(
        user_id=env.body["user_id"],
        username=env.body["username"],
        sign_pk=sign_pk,
        kem_pk=b64d(env.body["kem_pk"]),
        created_at=env.body["created_at"],
        fingerprint=hashlib.sha256(signing_input(LABEL_IDENTITY, env.body)).digest(),
        signed=env.to_json(),
    )


_SAFETY_LABEL = b"cv1/safety-number\x00"


def safety_number(fingerprint: bytes) -> str:
    """Twelve groups of five digits (about 199 bits) for reading out over a trusted channel."""
    if len(fingerprint) != 32:
        raise RecordError("a fingerprint is 32 bytes")
    digest = hashlib.sha512(_SAFETY_LABEL + fingerprint).digest()
    # 5 bytes (40 bits) per group reduced mod 10^5: the bias is below 2^-23, negligible here.
    groups = [int.from_bytes(digest[i * 5 : i * 5 + 5], "big") % 100000 for i in range(12)]
    return " ".join(f"{g:05d}" for g in groups)


def normalize_safety_number(text: str) -> str:
    """Accept what a human types (any spacing or dashes) and return the canonical form."""
    digits = "".join(ch for ch in text if ch.isdigit())
    if len(digits) != 60 or any(ch not in "0123456789 -" for ch in text.strip()):
        raise RecordError("a safety number is 60 digits")
    return " ".join(digits[i : i + 5] for i in range(0, 60, 5))


# ---------------------------------------------------------------- grant


@dataclass(frozen=True)
class Grant:
    case_id: str
    generation: int
    member: str
    member_fp: str
    sealed_key: bytes
    granter: str
    time: int
    signed: dict[str, str]


def grant_body(
    *,
    case_id: str,
    generation: int,
    member: str,
    member_fp: str,
    sealed_key: bytes,
    granter: str,
    time: int,
) -> dict[str, Any]:
    body = {
        "v": FORMAT_VERSION,
        "case_id": case_id,
        "generation": generation,
        "member": member,
        "member_fp": member_fp,
        "sealed_key": b64e(sealed_key),
        "granter": granter,
        "time": time,
    }
    _check_fields(LABEL_GRANT, body)
    return body


def parse_grant(signed: Any) -> Grant:
    """Shape only; use verify_grant (vault.protocol.membership) before trusting it."""
    env = open_envelope(LABEL_GRANT, signed)
    b = env.body
    return Grant(
        case_id=b["case_id"],
        generation=b["generation"],
        member=b["member"],
        member_fp=b["member_fp"],
        sealed_key=b64d(b["sealed_key"]),
        granter=b["granter"],
        time=b["time"],
        signed=env.to_json(),
    )


# ---------------------------------------------------------------- manifest and tombstone


@dataclass(frozen=True)
class Manifest:
    case_id: str
    file_id: str
    version: int
    generation: int
    membership_seq: int
    blob_size: int
    blob_sha256: str
    meta_hash: str
    wrapped_key_hash: str
    uploader: str
    time: int
    signed: dict[str, str]


def manifest_body(
    *,
    case_id: str,
    file_id: str,
    version: int,
    generation: int,
    membership_seq: int,
    blob_size: int,
    blob_sha256: str,
    meta_hash: str,
    wrapped_key_hash: str,
    uploader: str,
    time: int,
) -> dict[str, Any]:
    body = {
        "v": FORMAT_VERSION,
        "case_id": case_id,
        "file_id": file_id,
        "version": version,
        "generation": generation,
        "membership_seq": membership_seq,
        "blob_size": blob_size,
        "blob_sha256": blob_sha256,
        "meta_hash": meta_hash,
        "wrapped_key_hash": wrapped_key_hash,
        "uploader": uploader,
        "time": time,
    }
    _check_fields(LABEL_MANIFEST, body)
    if version < 1:
        raise RecordError("file versions start at 1")
    return body


def parse_manifest(signed: Any) -> Manifest:
    """Shape only; use verify_manifest (vault.protocol.membership) before trusting it."""
    env = open_envelope(LABEL_MANIFEST, signed)
    if env.body["version"] < 1:
        raise RecordError("file versions start at 1")
    return Manifest(**{k: v for k, v in env.body.items() if k != "v"}, signed=env.to_json())


@dataclass(frozen=True)
class Tombstone:
    case_id: str
    file_id: str
    membership_seq: int
    deleter: str
    time: int
    signed: dict[str, str]


def tombstone_body(
    *, case_id: str, file_id: str, membership_seq: int, deleter: str, time: int
) -> dict[str, Any]:
    body = {
        "v": FORMAT_VERSION,
        "case_id": case_id,
        "file_id": file_id,
        "membership_seq": membership_seq,
        "deleter": deleter,
        "time": time,
    }
    _check_fields(LABEL_TOMBSTONE, body)
    return body


def parse_tombstone(signed: Any) -> Tombstone:
    env = open_envelope(LABEL_TOMBSTONE, signed)
    return Tombstone(**{k: v for k, v in env.body.items() if k != "v"}, signed=env.to_json())
