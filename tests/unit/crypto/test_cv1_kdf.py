"""Passphrase KDF, its floor against downgrades, subkeys and recovery codes."""

from __future__ import annotations

import time

import pytest

from client.crypto import (
    InvalidRecoveryCode,
    KdfParams,
    WeakKdfParameters,
    check_kdf_params,
    derive_account_keys,
    generate_recovery_code,
    kdf,
    new_kdf_params,
    parse_recovery_code,
    recovery_keys,
)

SALT = bytes(range(16))
CHEAP = KdfParams(SALT, kdf.TEST_OPS, kdf.TEST_MEM)


def test_subkeys_are_distinct_and_deterministic():
    a = derive_account_keys("correct horse battery staple", CHEAP)
    assert a == derive_account_keys("correct horse battery staple", CHEAP)
    assert len({a.auth_key, a.kek}) == 2 and len(a.auth_key) == 32
    assert derive_account_keys("correct horse battery stapler", CHEAP).kek != a.kek
    assert (
        derive_account_keys(
            "correct horse battery staple", KdfParams(bytes(16), CHEAP.ops, CHEAP.mem)
        ).kek
        != a.kek
    )


def test_passphrase_is_nfkc_normalised():
    # "é" typed precomposed or as e + combining accent derives the same keys.
    assert derive_account_keys("caf\u00e9", CHEAP) == derive_account_keys("cafe\u0301", CHEAP)


def test_kdf_downgrade_is_refused_without_the_test_switch(monkeypatch):
    monkeypatch.delenv("CASEVAULT_TEST_INSECURE_KDF")
    # A server (or a seized and modified one) proposes cheap parameters to speed up guessing.
    for ops, mem in [(1, 8 * 1024 * 1024), (2, 32 * 1024 * 1024), (1, 64 * 1024 * 1024)]:
        with pytest.raises(WeakKdfParameters):
            check_kdf_params(ops, mem)
        with pytest.raises(WeakKdfParameters):
            derive_account_keys("pw", KdfParams(SALT, ops, mem))
    check_kdf_params(kdf.FLOOR_OPS, kdf.FLOOR_MEM)
    assert new_kdf_params().ops == kdf.DEFAULT_OPS and new_kdf_params().mem == kdf.DEFAULT_MEM


def test_the_test_switch_only_accepts_exactly_1(monkeypatch):
    monkeypatch.setenv("CASEVAULT_TEST_INSECURE_KDF", "yes")
    with pytest.raises(WeakKdfParameters):
        check_kdf_params(1, 8 * 1024 * 1024)


@pytest.mark.parametrize(
    "ops,mem", [(0, kdf.TEST_MEM), (1, 8191), (100, kdf.TEST_MEM), (2, 2**40), (True, kdf.TEST_MEM)]
)
def test_out_of_range_parameters_are_refused(ops, mem):
    with pytest.raises(WeakKdfParameters):
        check_kdf_params(ops, mem)


def test_bad_salt_is_refused():
    with pytest.raises(WeakKdfParameters):
        derive_account_keys("pw", KdfParams(b"short", CHEAP.ops, CHEAP.mem))


def test_recovery_code_roundtrip_and_keys():
    code, secret = generate_recovery_code()
    assert len(code) == 44 and code.count("-") == 8
    assert parse_recovery_code(code) == secret
    assert parse_recovery_code(code.lower().replace("-", " ")) == secret
    keys = recovery_keys(secret)
    assert keys.recovery_key != keys.recovery_auth_key
    assert len(keys.recovery_key) == 32


def test_recovery_code_look_alikes_are_accepted():
    code, secret = generate_recovery_code()
    swapped = code.replace("0", "O").replace("1", "l")
    assert parse_recovery_code(swapped) == secret


def test_every_single_character_typo_is_caught():
    code, _ = generate_recovery_code()
    alphabet = kdf._CROCKFORD
    caught = total = 0
    for i, ch in enumerate(code):
        if ch == "-":
            continue
        for repl in alphabet:
            if repl == ch:
                continue
            total += 1
            try:
                parse_recovery_code(code[:i] + repl + code[i + 1 :])
            except InvalidRecoveryCode:
                caught += 1
    # A 20-bit checksum misses about one typo in a million; allow none of ~1100 here.
    assert caught == total


@pytest.mark.parametrize("text", ["", "ABCD", "U" * 36, "!" * 36])
def test_malformed_recovery_codes_are_refused(text):
    with pytest.raises(InvalidRecoveryCode):
        parse_recovery_code(text)


@pytest.mark.slow
def test_real_moderate_cost(monkeypatch):
    monkeypatch.delenv("CASEVAULT_TEST_INSECURE_KDF")
    params = new_kdf_params(salt=SALT)
    assert (params.ops, params.mem) == (3, 256 * 1024 * 1024)
    start = time.perf_counter()
    keys = derive_account_keys("correct horse battery staple", params)
    elapsed = time.perf_counter() - start
    assert len(keys.kek) == 32
    assert elapsed > 0.05  # real memory-hard work, not a silent cheap path
