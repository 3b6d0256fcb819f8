"""argon2 hashing of auth keys."""

from __future__ import annotations

import secrets

from vault.auth.passwords import SecretHasher


def test_verify_accepts_only_the_right_secret():
    hasher = SecretHasher(insecure_test_parameters=True)
    secret = secrets.token_bytes(32)
    stored = hasher.hash(secret)
    assert stored.startswith("$argon2id$")
    assert hasher.verify(stored, secret)
    assert not hasher.verify(stored, secrets.token_bytes(32))
    assert not hasher.verify("not a hash", secret)


def test_unknown_account_path_never_verifies():
    hasher = SecretHasher(insecure_test_parameters=True)
    assert not hasher.verify(None, b"")
    assert not hasher.verify(None, secrets.token_bytes(32))


def test_rehash_is_wanted_when_parameters_rise():
    cheap = SecretHasher(insecure_test_parameters=True)
    stored = cheap.hash(b"k" * 32)
    assert not cheap.needs_rehash(stored)
    assert SecretHasher().needs_rehash(stored)
