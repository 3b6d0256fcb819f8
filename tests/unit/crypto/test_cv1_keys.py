"""The identity: public record, wrapping under kek and recovery key."""

from __future__ import annotations

import pytest

from client.crypto import (
    PURPOSE_KEK,
    PURPOSE_RECOVERY,
    Identity,
    IntegrityError,
    unwrap_identity,
    wrap_identity,
)
from client.crypto.keys import hpke_public_key
from vault.protocol.ids import new_id
from vault.protocol.records import verify_identity_record

KEK = bytes(range(32))


def test_public_record_is_self_signed_and_stable(alice):
    rec = verify_identity_record(alice.public_record())
    assert rec.user_id == alice.user_id and rec.username == "alice"
    assert rec.sign_pk == alice.sign_pk and rec.kem_pk == alice.kem_pk
    assert alice.record().fingerprint == rec.fingerprint  # Ed25519 is deterministic
    hpke_public_key(rec.kem_pk)


def test_wrap_roundtrip_both_purposes(alice):
    for purpose in (PURPOSE_KEK, PURPOSE_RECOVERY):
        blob = wrap_identity(alice, KEK, purpose)
        assert unwrap_identity(blob, KEK, alice.user_id, purpose) == alice


def test_wrap_is_bound_to_key_user_and_purpose(alice):
    blob = wrap_identity(alice, KEK, PURPOSE_KEK)
    with pytest.raises(IntegrityError):
        unwrap_identity(blob, bytes(32), alice.user_id, PURPOSE_KEK)
    # The server hands alice's wrapped identity to another account: refused.
    with pytest.raises(IntegrityError):
        unwrap_identity(blob, KEK, new_id(), PURPOSE_KEK)
    # A kek-wrapped blob presented as the recovery copy: refused.
    with pytest.raises(IntegrityError):
        unwrap_identity(blob, KEK, alice.user_id, PURPOSE_RECOVERY)
    for i in (0, 30, len(blob) - 1):
        bad = bytearray(blob)
        bad[i] ^= 1
        with pytest.raises(IntegrityError):
            unwrap_identity(bytes(bad), KEK, alice.user_id, PURPOSE_KEK)
    with pytest.raises(IntegrityError):
        unwrap_identity(blob[:20], KEK, alice.user_id, PURPOSE_KEK)


def test_unknown_purpose_is_a_programming_error(alice):
    with pytest.raises(ValueError):
        wrap_identity(alice, KEK, "admin")


def test_from_parts_is_deterministic():
    a = Identity._from_parts(new_id(), "dana", 5, bytes(32), bytes(64), bytes([9]) * 32)
    b = Identity._from_parts(a.user_id, "dana", 5, bytes(32), bytes(64), bytes([9]) * 32)
    assert a.public_record() == b.public_record()
    with pytest.raises(ValueError):
        Identity._from_parts(a.user_id, "dana", 5, bytes(31), bytes(64), bytes(32))
