"""The server key file and what is derived from it."""

from __future__ import annotations

import stat

import pytest

from vault.auth.keys import ServerKeyError, ServerKeys, load_or_create_master_key


def test_key_file_is_created_private_and_never_overwritten(tmp_path):
    path = tmp_path / "data" / "server.key"
    first = load_or_create_master_key(path)
    assert len(first) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_master_key(path) == first


def test_malformed_key_file_is_refused(tmp_path):
    path = tmp_path / "server.key"
    path.write_bytes(b"short")
    with pytest.raises(ServerKeyError):
        ServerKeys.from_file(path)


def test_totp_secret_sealing_binds_user_and_key(tmp_path):
    keys = ServerKeys.from_file(tmp_path / "a.key")
    other = ServerKeys.from_file(tmp_path / "b.key")
    sealed = keys.seal_totp_secret("a" * 32, b"s" * 20)
    assert b"s" * 20 not in sealed
    assert keys.open_totp_secret("a" * 32, sealed) == b"s" * 20
    # A row copied onto another user, or a database opened with another server key, fails.
    with pytest.raises(ServerKeyError):
        keys.open_totp_secret("b" * 32, sealed)
    with pytest.raises(ServerKeyError):
        other.open_totp_secret("a" * 32, sealed)


def test_fake_salt_is_deterministic_per_name_and_secret_per_server(tmp_path):
    keys = ServerKeys.from_file(tmp_path / "a.key")
    other = ServerKeys.from_file(tmp_path / "b.key")
    assert keys.fake_kdf_salt("nobody") == keys.fake_kdf_salt("nobody")
    assert len(keys.fake_kdf_salt("nobody")) == 16
    assert keys.fake_kdf_salt("nobody") != keys.fake_kdf_salt("nobody2")
    assert keys.fake_kdf_salt("nobody") != other.fake_kdf_salt("nobody")
