"""T5: the directory (the server) hands Alice an impostor's key under Bob's name, so that she
seals the case key to the impostor. Pinning, safety numbers and the hard stop catch it."""

from __future__ import annotations

import pytest
from attack_kit import make_identity, run_sql

from client.errors import FingerprintMismatch, KeyChanged
from vault.protocol.records import safety_number


def _substitute(app_settings, username: str) -> str:
    """Replace the published identity of `username` with a fresh key pair the server holds."""
    ((user_id,),) = run_sql(
        app_settings.resolved_database_url(),
        "SELECT id FROM users WHERE username = :u",
        {"u": username},
    )
    impostor = make_identity(username)
    impostor = type(impostor)._from_parts(
        user_id,
        username,
        impostor.created_at,
        impostor.sign_seed,
        impostor.mlkem_seed,
        impostor.x25519_private,
    )
    record = impostor.public_record()
    run_sql(
        app_settings.resolved_database_url(),
        "UPDATE users SET identity_body = :b, identity_sig = :s WHERE id = :i",
        {"b": record["body"], "s": record["sig"], "i": user_id},
    )
    return impostor.record().safety_number


def test_T5_substituted_key_after_pinning_stops_sharing(lawyer, app_settings):
    alice = lawyer("alice")
    lawyer("bob")
    first = alice.create_case("R v Adeyemi")
    shared = alice.share(first, "bob", role="editor")
    assert shared["first_seen"] is True  # Bob's real key is pinned now
    impostor_number = _substitute(app_settings, "bob")
    assert impostor_number != shared["safety_number"]
    second = alice.create_case("R v Adeyemi (appeal)")
    with pytest.raises(KeyChanged):
        alice.share(second, "bob", role="editor")
    # Nothing was sealed to the impostor: the second case still has Alice alone.
    assert [m["username"] for m in alice.members(second)] == ["alice"]


def test_T5_fingerprint_mismatch_on_first_share_refused(lawyer, app_settings):
    alice, bob = lawyer("alice"), lawyer("bob")
    real_number = bob.fingerprint()["safety_number"]
    _substitute(app_settings, "bob")
    case_id = alice.create_case("R v Haddad")
    # Alice has never seen Bob's key; Bob read his real number to her over the phone.
    with pytest.raises(FingerprintMismatch):
        alice.share(case_id, "bob", role="editor", fingerprint=real_number)
    assert [m["username"] for m in alice.members(case_id)] == ["alice"]


def test_T5_safety_number_is_key_bound(people):
    # Two identities under one name and id never share a safety number (no collision by choice).
    a, b = people["alice"].record(), make_identity("alice").record()
    assert a.safety_number != b.safety_number
    assert safety_number(a.fingerprint) == a.safety_number
