"""T4: a hostile server answers pre-login with weak Argon2id parameters, so that the lawyer's
wrapped identity (which it stores) becomes cheap to guess offline.

The client's floor is libsodium INTERACTIVE (2 passes, 64 MiB); only the local test switch
lowers it, and never below 1 pass / 8 MiB.
"""

from __future__ import annotations

import pytest

from client.crypto.errors import WeakKdfParameters
from client.crypto.kdf import (
    FLOOR_MEM,
    FLOOR_OPS,
    KdfParams,
    check_kdf_params,
    derive_account_keys,
)

MIB = 1024 * 1024
WEAK = [
    (1, 8 * MIB),  # what the test switch allows: refused without it
    (FLOOR_OPS - 1, FLOOR_MEM),
    (FLOOR_OPS, FLOOR_MEM - 1),
    (0, 0),
    (-1, FLOOR_MEM),
    (True, FLOOR_MEM),  # a JSON true is not a number of passes
    ("3", "268435456"),
    (3.0, float(256 * MIB)),
    (None, None),
]


@pytest.mark.parametrize(("ops", "mem"), WEAK)
def test_T4_client_refuses_kdf_below_floor(monkeypatch, ops, mem):
    monkeypatch.delenv("CASEVAULT_TEST_INSECURE_KDF", raising=False)
    with pytest.raises(WeakKdfParameters):
        check_kdf_params(ops, mem)
    # Derivation itself checks too, so no caller can skip the check.
    with pytest.raises(WeakKdfParameters):
        derive_account_keys("correct horse battery staple", KdfParams(bytes(16), ops, mem))


def test_T4_floor_itself_is_accepted(monkeypatch):
    monkeypatch.delenv("CASEVAULT_TEST_INSECURE_KDF", raising=False)
    check_kdf_params(FLOOR_OPS, FLOOR_MEM)


@pytest.mark.parametrize(("ops", "mem"), [(0, 8 * MIB), (1, 8 * MIB - 1), (1, 1024)])
def test_T4_test_switch_still_has_a_floor(monkeypatch, ops, mem):
    monkeypatch.setenv("CASEVAULT_TEST_INSECURE_KDF", "1")
    with pytest.raises(WeakKdfParameters):
        check_kdf_params(ops, mem)


@pytest.mark.parametrize("value", ["true", "yes", "0", "", " 1"])
def test_T4_only_the_exact_switch_lowers_the_floor(monkeypatch, value):
    monkeypatch.setenv("CASEVAULT_TEST_INSECURE_KDF", value)
    with pytest.raises(WeakKdfParameters):
        check_kdf_params(1, 8 * MIB)
