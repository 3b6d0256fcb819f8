"""T27: the laptop is stolen or imaged at a border; the thief reads CASEVAULT_HOME."""

from __future__ import annotations

import os
import stat

import pytest
from attack_kit import PASSPHRASE, all_file_bytes, encodings_of

from client.crypto.kdf import KdfParams, derive_account_keys
from client.errors import VaultError
from client.vault import Vault
from vault.protocol.encoding import b64d


def test_T27_home_holds_no_secret_in_clear(lawyer, tmp_path):
    alice = lawyer("alice")
    case_id = alice.create_case("R v Nakamura")
    doc = tmp_path / "plea.txt"
    doc.write_bytes(b"plea strategy, privileged")
    alice.put(case_id, [doc])
    ctx = alice._cases().load(case_id)
    home = alice.keystore.home

    # Permissions: only the lawyer's account can read anything there.
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    for path in home.rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), f"{path} has mode {oct(mode)}"

    image = all_file_bytes(home)
    identity = alice.identity()
    profile = alice.me
    keys = derive_account_keys(
        PASSPHRASE, KdfParams(b64d(profile.kdf["salt"]), profile.kdf["ops"], profile.kdf["mem"])
    )
    secrets = {
        "passphrase": PASSPHRASE.encode(),
        "kek": keys.kek,
        "auth_key": keys.auth_key,
        "signing key": identity.sign_seed,
        "ML-KEM seed": identity.mlkem_seed,
        "X25519 key": identity.x25519_private,
        **{f"case key {g}": k for g, k in ctx.keys.items()},
    }
    for label, value in secrets.items():
        for form in encodings_of(value):
            assert form.encode("latin-1") not in image, f"{label} found in CASEVAULT_HOME"
    assert b"plea strategy" not in image


def test_T27_thief_without_passphrase_cannot_unlock(lawyer):
    alice = lawyer("alice")
    # The thief copies the home folder and guesses; every guess costs one Argon2id.
    thief = Vault(str(alice.keystore.home), passphrase="Tr0ub4dor&3")
    with pytest.raises(VaultError, match="wrong passphrase"):
        thief.identity()
    assert os.listdir(alice.keystore.home)
