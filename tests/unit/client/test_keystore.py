"""client.keystore: private folder and files, atomic writes, pins."""

from __future__ import annotations

import pytest

from client.crypto import Identity, LocalStateKey
from client.keystore import Keystore, KeystoreError, Pin
from client.transfers import TransferStates


def _states(home) -> TransferStates:
    return TransferStates(Keystore(home), LocalStateKey.of(Identity.generate("a" * 32, "alice")))


def test_folder_and_files_are_private(tmp_path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    ks = Keystore(home)
    ks.save_session("token")
    assert home.stat().st_mode & 0o777 == 0o700
    assert (home / "session.json").stat().st_mode & 0o777 == 0o600
    assert ks.load_session() == "token"
    ks.clear_session()
    assert ks.load_session() is None


def test_atomic_write_leaves_no_temp_files(tmp_path) -> None:
    states = _states(tmp_path)
    for i in range(3):
        states.save("up-abc", {"n": i})
    assert states.load("up-abc") == {"n": 2}
    assert sorted(p.name for p in (tmp_path / "transfers").iterdir()) == ["up-abc.state"]


def test_pins_round_trip_and_lookup_by_user_id(tmp_path) -> None:
    ks = Keystore(tmp_path)
    pin = Pin("bob", "a" * 32, "f" * 64, {"body": "b", "sig": "s"}, 1, False)
    ks.save_pin(pin)
    assert ks.pin("bob") == pin
    assert ks.pin_by_user_id("a" * 32) == pin
    assert ks.pin("carol") is None


def test_transfer_keys_cannot_escape_the_folder(tmp_path) -> None:
    with pytest.raises(KeystoreError):
        _states(tmp_path).save("../evil", {})


def test_damaged_file_is_a_clear_error(tmp_path) -> None:
    (tmp_path / "pins.json").write_text("{not json")
    with pytest.raises(KeystoreError, match="damaged"):
        Keystore(tmp_path).pins()


def test_used_totp_codes_are_remembered_while_they_could_match(tmp_path) -> None:
    ks = Keystore(tmp_path)
    ks.remember_totp_code("https://v", "alice", "123456", now=1000)
    assert ks.totp_code_used("https://v", "alice", "123456", now=1089)
    assert not ks.totp_code_used("https://v", "alice", "123456", now=1090)
    assert not ks.totp_code_used("https://v", "bob", "123456", now=1000)
    assert not ks.totp_code_used("https://w", "alice", "123456", now=1000)
    # One-time recovery codes stay spent, whatever their dashes and case.
    ks.remember_totp_code("https://v", "alice", "ABCD-EFGH-IJKL-MNOP", one_time=True, now=1000)
    assert ks.totp_code_used("https://v", "alice", "abcdefghijklmnop", now=10**9)
    # Only digests are on disk.
    stored = (tmp_path / "totp_used.json").read_text()
    assert "123456" not in stored and "ABCD" not in stored
