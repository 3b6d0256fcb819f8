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


def test_server_parameters_are_one_lane_of_the_rfc_9106_low_memory_profile():
    """argon2id, 3 passes, 64 MiB, one lane: one hash keeps to one core (a 4-lane hash ran as
    4 threads and took both cores of a 2-core server during a login burst)."""
    from argon2 import Type, extract_parameters

    params = extract_parameters(SecretHasher().hash(b"k" * 32))
    assert (params.type, params.time_cost, params.memory_cost, params.parallelism) == (
        Type.ID, 3, 64 * 1024, 1)


def test_a_four_lane_hash_still_verifies_and_is_replaced_at_next_login():
    from argon2 import PasswordHasher

    secret = secrets.token_bytes(32)
    old = PasswordHasher(time_cost=3, memory_cost=64 * 1024, parallelism=4).hash(secret)
    hasher = SecretHasher()
    assert hasher.verify(old, secret)
    assert not hasher.verify(old, secrets.token_bytes(32))
    assert hasher.needs_rehash(old)
