"""Run every committed cv1 vector (tests/vectors/v1/*.txt) against the implementation."""

from __future__ import annotations

import base64
import hashlib
import io
import json
from pathlib import Path

import pytest

from client.crypto import IntegrityError, InvalidRecoveryCode, WeakKdfParameters, kdf
from client.crypto.keys import Identity, unwrap_identity
from client.crypto.seal import (
    FileMetadata,
    decrypt_file_metadata,
    open_grant,
    unwrap_file_key,
)
from client.crypto.stream import decrypt_stream
from vault.protocol import membership as m
from vault.protocol import records as r
from vault.protocol.encoding import b64d
from vault.protocol.intake import parse_intake

V1 = Path(__file__).parent / "v1"
FILES = sorted(V1.glob("*.txt"))


def load(path: Path) -> tuple[dict[str, str], str]:
    text = path.read_text(encoding="utf-8")
    head, _, payload = text.partition("\n\n")
    header = dict(line.split(": ", 1) for line in head.splitlines())
    return header, payload.strip()


def person(s: dict) -> Identity:
    return Identity._from_parts(
        s["user_id"],
        s["username"],
        s["created_at"],
        bytes.fromhex(s["sign_seed"]),
        bytes.fromhex(s["mlkem_seed"]),
        bytes.fromhex(s["x25519"]),
    )


def people(body: dict) -> dict[str, Identity]:
    return {p.username: p for p in map(person, body["people"])}


def identities(folks: dict[str, Identity]) -> dict[str, r.IdentityRecord]:
    return {p.user_id: p.record() for p in folks.values()}


def run_stream(h: dict, payload: str) -> None:
    blob = base64.b64decode(payload) if payload != "=" else b""
    out = io.BytesIO()
    decrypt_stream(
        io.BytesIO(blob),
        out,
        bytes.fromhex(h["file_key"]),
        case_id=h["case_id"],
        file_id=h["file_id"],
        version=int(h["version"]),
        plaintext_size=int(h["plaintext_size"]),
    )
    assert hashlib.sha256(out.getvalue()).hexdigest() == h["plaintext_sha256"]


def run_kdf(h: dict, payload: str) -> None:
    body = json.loads(payload)
    params = kdf.KdfParams(bytes.fromhex(body["salt"]), body["ops"], body["mem"])
    keys = kdf.derive_account_keys(body["passphrase"], params)
    assert (keys.auth_key.hex(), keys.kek.hex()) == (h["auth_key"], h["kek"])


def run_recovery(h: dict, payload: str) -> None:
    secret = kdf.parse_recovery_code(json.loads(payload)["code"])
    keys = kdf.recovery_keys(secret)
    assert secret.hex() == h["secret"]
    assert keys.recovery_key.hex() == h["recovery_key"]
    assert keys.recovery_auth_key.hex() == h["recovery_auth_key"]


def run_identity(h: dict, payload: str) -> None:
    body = json.loads(payload)
    rec = r.verify_identity_record(body["record"])
    assert rec.fingerprint_hex == h["fingerprint"] and rec.safety_number == h["safety_number"]
    assert person(body["seeds"]).public_record() == body["record"]


def run_identity_wrap(h: dict, payload: str) -> None:
    body = json.loads(payload)
    got = unwrap_identity(
        b64d(body["wrapped"]), bytes.fromhex(h["key"]), h["user_id"], h["purpose"]
    )
    assert got == person(body["seeds"])


def run_file_key(h: dict, payload: str) -> None:
    key = unwrap_file_key(
        b64d(json.loads(payload)["wrapped"]),
        case_key=bytes.fromhex(h["case_key"]),
        case_id=h["case_id"],
        file_id=h["file_id"],
        version=int(h["version"]),
        generation=int(h["generation"]),
    )
    assert key.hex() == h["file_key"]


def run_file_meta(h: dict, payload: str) -> None:
    body = json.loads(payload)
    meta = decrypt_file_metadata(
        b64d(body["blob"]),
        file_key=bytes.fromhex(h["file_key"]),
        case_id=h["case_id"],
        file_id=h["file_id"],
        version=int(h["version"]),
    )
    expected = dict(body["meta"])
    intake = expected.pop("intake", None)
    assert meta == FileMetadata(**expected, intake=None if intake is None else parse_intake(intake))


def run_grant(h: dict, payload: str) -> None:
    body = json.loads(payload)
    folks = people(body)
    ids = identities(folks)
    state = m.replay_membership(body["membership"], ids)
    key = open_grant(
        body["grant"],
        identity=folks[h["opener"]],
        state=state,
        identities=ids,
        generation=int(h["generation"]),
    )
    assert key.hex() == h["case_key"]


def run_manifest(h: dict, payload: str) -> None:
    body = json.loads(payload)
    ids = identities(people(body))
    state = m.replay_membership(body["membership"], ids)
    m.verify_manifest(body["manifest"], state, ids, case_id=h["case_id"])


def run_membership(h: dict, payload: str) -> None:
    body = json.loads(payload)
    state = m.replay_membership(body["membership"], identities(people(body)))
    if "hold_seq" in h:
        assert state.hold is not None and state.hold.seq == int(h["hold_seq"])


def run_tombstone(h: dict, payload: str) -> None:
    body = json.loads(payload)
    ids = identities(people(body))
    state = m.replay_membership(body["membership"], ids)
    m.verify_tombstone(body["tombstone"], state, ids)


RUNNERS = {
    "stream": run_stream,
    "kdf": run_kdf,
    "recovery": run_recovery,
    "identity": run_identity,
    "identity-wrap": run_identity_wrap,
    "file-key": run_file_key,
    "file-meta": run_file_meta,
    "grant": run_grant,
    "manifest": run_manifest,
    "membership": run_membership,
    "tombstone": run_tombstone,
}

# What each failure must raise. Records say why (RecordError text); client.crypto stays uniform.
FAILURES = {
    "header failure": (IntegrityError, None),
    "payload failure": (IntegrityError, None),
    "truncated": (IntegrityError, None),
    "wrong key": (IntegrityError, None),
    "wrong context": (IntegrityError, None),
    "unsupported version": ((IntegrityError, r.RecordError), None),
    "padding failure": (IntegrityError, None),
    "weak parameters": (WeakKdfParameters, None),
    "checksum failure": (InvalidRecoveryCode, None),
    "not authorized": ((IntegrityError, r.RecordError), None),
    "bad signature": ((IntegrityError, r.RecordError), None),
    "reordered": ((IntegrityError, r.RecordError), None),
    "malformed": (IntegrityError, None),
    "invalid transition": (r.RecordError, None),
}


def test_the_vector_set_is_complete():
    expects = {load(p)[0]["expect"] for p in FILES}
    assert len(FILES) >= 35
    assert expects == {"success", *FAILURES}


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_vector(path, monkeypatch):
    # Vectors run at the real floor (INTERACTIVE); the downgrade vector must fail without help.
    monkeypatch.delenv("CASEVAULT_TEST_INSECURE_KDF", raising=False)
    header, payload = load(path)
    runner = RUNNERS[header["kind"]]
    if header["expect"] == "success":
        runner(header, payload)
        return
    exc, _ = FAILURES[header["expect"]]
    with pytest.raises(exc) as info:
        runner(header, payload)
    if header["expect"] == "bad signature" and isinstance(info.value, r.RecordError):
        assert "signature" in str(info.value)
    if header["expect"] == "unsupported version" and isinstance(info.value, r.RecordError):
        assert "version" in str(info.value)
