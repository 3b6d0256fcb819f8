"""T2: the state images the server and guesses passphrases offline.

What it holds per account: the KDF salt and parameters, an argon2-cffi hash of `auth_key`, and
the identity wrapped under `kek`. Each guess costs one Argon2id at the account's parameters.
"""

from __future__ import annotations

import time

import pytest

from client.crypto.kdf import (
    DEFAULT_MEM,
    DEFAULT_OPS,
    account_keys,
    derive_account_keys,
    derive_master,
    new_kdf_params,
)


@pytest.mark.slow
def test_T2_default_kdf_cost_is_moderate(monkeypatch):
    monkeypatch.delenv("CASEVAULT_TEST_INSECURE_KDF", raising=False)
    params = new_kdf_params()
    assert (params.ops, params.mem) == (DEFAULT_OPS, DEFAULT_MEM) == (3, 256 * 1024 * 1024)
    started = time.perf_counter()
    derive_master("a guess", params)
    elapsed = time.perf_counter() - started
    # One guess at MODERATE costs a quarter of a second or more on this class of machine and
    # 256 MiB of memory; a GPU farm gains little over a CPU because of the memory.
    assert elapsed > 0.2, f"one Argon2id guess took only {elapsed:.3f}s"


def test_T2_auth_key_and_kek_are_independent(monkeypatch):
    # The server sees auth_key at every login. It must not help with kek, which wraps the
    # identity: both are keyed-BLAKE2b subkeys of the master under distinct labels.
    params = new_kdf_params()
    keys = derive_account_keys("correct horse battery staple", params)
    assert keys.auth_key != keys.kek
    assert len(keys.auth_key) == len(keys.kek) == 32
    # Same passphrase, another salt: unrelated keys (no precomputation across accounts).
    other = derive_account_keys("correct horse battery staple", new_kdf_params())
    assert other.auth_key != keys.auth_key
    assert account_keys(bytes(32)).auth_key != account_keys(bytes(31) + b"\x01").auth_key
