"""Identity, grant, manifest and tombstone records: shape, version, signature, safety numbers."""

from __future__ import annotations

import os

import nacl.signing
import pytest

from vault.protocol import records as r
from vault.protocol.encoding import b64d, b64e, canonical_json, parse_canonical
from vault.protocol.ids import new_id


def _identity(username="alice"):
    sk = nacl.signing.SigningKey.generate()
    body = r.identity_body(
        user_id=new_id(),
        username=username,
        sign_pk=bytes(sk.verify_key),
        kem_pk=os.urandom(r.KEM_PK_BYTES),
        created_at=1_700_000_000,
    )
    return sk, r.sign_record(r.LABEL_IDENTITY, body, sk)


def _resign(signed, label, sk, **changes):
    body = parse_canonical(b64d(signed["body"]))
    body.update(changes)
    return (
        {
            "body": b64e(canonical_json(body)),
            "sig": b64e(sk.sign(r.signing_input(label, body)).signature),
        }
        if sk
        else {"body": b64e(canonical_json(body)), "sig": signed["sig"]}
    )


def test_identity_roundtrip_and_fingerprint():
    _, signed = _identity()
    rec = r.verify_identity_record(signed)
    assert rec.username == "alice"
    assert len(rec.fingerprint) == 32
    assert rec.signed == signed
    # The fingerprint covers the whole signed body: same keys, other name, other fingerprint.
    sk, other = _identity()
    assert r.verify_identity_record(other).fingerprint != rec.fingerprint


def test_identity_with_swapped_key_is_refused():
    sk, signed = _identity()
    mallory = nacl.signing.SigningKey.generate()
    # A server substitutes its own signing key but keeps the old signature: refused.
    forged = _resign(signed, r.LABEL_IDENTITY, None, sign_pk=b64e(bytes(mallory.verify_key)))
    with pytest.raises(r.RecordError):
        r.verify_identity_record(forged)


def test_identity_swapped_kem_key_needs_a_new_signature_and_changes_fingerprint():
    sk, signed = _identity()
    original = r.verify_identity_record(signed)
    forged = _resign(signed, r.LABEL_IDENTITY, None, kem_pk=b64e(os.urandom(r.KEM_PK_BYTES)))
    with pytest.raises(r.RecordError):
        r.verify_identity_record(forged)
    # Even a validly self-signed replacement shows up as a different safety number.
    mallory = nacl.signing.SigningKey.generate()
    replaced = _resign(signed, r.LABEL_IDENTITY, mallory, sign_pk=b64e(bytes(mallory.verify_key)))
    assert r.verify_identity_record(replaced).safety_number != original.safety_number


@pytest.mark.parametrize(
    "changes",
    [
        {"v": "cv2"},
        {"v": None},
        {"extra": 1},
        {"user_id": "ABC"},
        {"username": ""},
        {"username": "a\nb"},
        {"created_at": -1},
        {"created_at": True},
        {"sign_pk": b64e(b"short")},
        {"kem_pk": b64e(os.urandom(32))},
    ],
)
def test_identity_bad_shapes_are_refused(changes):
    sk, signed = _identity()
    with pytest.raises(r.RecordError):
        r.verify_identity_record(_resign(signed, r.LABEL_IDENTITY, sk, **changes))


def test_missing_field_is_refused():
    sk, signed = _identity()
    body = parse_canonical(b64d(signed["body"]))
    del body["created_at"]
    env = {
        "body": b64e(canonical_json(body)),
        "sig": b64e(sk.sign(r.signing_input(r.LABEL_IDENTITY, body)).signature),
    }
    with pytest.raises(r.RecordError):
        r.verify_identity_record(env)


@pytest.mark.parametrize(
    "envelope",
    [None, [], {}, {"body": "x"}, {"body": "AA", "sig": "AA", "more": ""}, {"body": 1, "sig": 2}],
)
def test_malformed_envelopes_are_refused(envelope):
    with pytest.raises(r.RecordError):
        r.verify_identity_record(envelope)


def test_non_canonical_body_is_refused_even_when_signed():
    sk, signed = _identity()
    body = parse_canonical(b64d(signed["body"]))
    spaced = canonical_json(body).replace(b",", b", ")
    sig = sk.sign(r.LABEL_IDENTITY.encode() + b"\x00" + spaced).signature
    with pytest.raises(r.RecordError):
        r.verify_identity_record({"body": b64e(spaced), "sig": b64e(sig)})


def test_label_confusion_is_refused():
    # An identity body signed as something else does not verify as an identity.
    sk, signed = _identity()
    body = parse_canonical(b64d(signed["body"]))
    sig = sk.sign(r.signing_input("cv1/manifest", body)).signature
    with pytest.raises(r.RecordError):
        r.verify_identity_record({"body": signed["body"], "sig": b64e(sig)})
    with pytest.raises(r.RecordError):
        r.open_envelope("cv1/unknown", signed)
    with pytest.raises(r.RecordError):
        r.open_envelope("cv2/identity", signed)


def test_safety_number_shape_and_normalisation():
    _, signed = _identity()
    number = r.verify_identity_record(signed).safety_number
    groups = number.split(" ")
    assert len(groups) == 12 and all(len(g) == 5 and g.isdigit() for g in groups)
    assert r.normalize_safety_number(number.replace(" ", "-")) == number
    assert r.normalize_safety_number(number.replace(" ", "")) == number
    with pytest.raises(r.RecordError):
        r.normalize_safety_number(number[:-1])
    with pytest.raises(r.RecordError):
        r.normalize_safety_number(number + "x")


def test_manifest_and_tombstone_shapes():
    sk = nacl.signing.SigningKey.generate()
    body = r.manifest_body(
        case_id=new_id(),
        file_id=new_id(),
        version=1,
        generation=0,
        membership_seq=0,
        blob_size=10,
        blob_sha256="a" * 64,
        meta_hash="b" * 64,
        wrapped_key_hash="c" * 64,
        uploader=new_id(),
        time=5,
    )
    m = r.parse_manifest(r.sign_record(r.LABEL_MANIFEST, body, sk))
    assert m.version == 1 and m.blob_sha256 == "a" * 64
    with pytest.raises(r.RecordError):
        r.manifest_body(**{**{k: v for k, v in body.items() if k != "v"}, "version": 0})
    with pytest.raises(r.RecordError):
        r.manifest_body(**{**{k: v for k, v in body.items() if k != "v"}, "blob_sha256": "A" * 64})
    t = r.tombstone_body(
        case_id=new_id(), file_id=new_id(), membership_seq=0, deleter=new_id(), time=1
    )
    assert r.parse_tombstone(r.sign_record(r.LABEL_TOMBSTONE, t, sk)).time == 1
