"""T27: the laptop is stolen or imaged at a border; the thief reads CASEVAULT_HOME."""

from __future__ import annotations

import hashlib
import json
import os
import stat

import httpx
import pytest
from attack_kit import PASSPHRASE, all_file_bytes, encodings_of

from client.api import Unreachable
from client.crypto import LocalStateKey
from client.crypto.kdf import KdfParams, derive_account_keys
from client.errors import VaultError
from client.files import upload
from client.transfers import TransferStates
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


class _CutAfterParts(httpx.BaseTransport):
    """Real HTTP to the server; the connection breaks once `parts` upload parts went up (None:
    never). Counts the parts that reached the server."""

    def __init__(self, parts: int | None) -> None:
        self._inner = httpx.HTTPTransport()
        self._limit = parts
        self.sent: list[int] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "PUT" and "/parts/" in request.url.path:
            if self._limit is not None and len(self.sent) >= self._limit:
                raise httpx.WriteError("connection reset by peer", request=request)
            self.sent.append(int(request.url.path.rsplit("/", 1)[1]))
        return self._inner.handle_request(request)


def _interrupted_put(alice, tmp_path, monkeypatch, name: str):
    """A put that the network cuts after two of its parts (as tests/cli/test_cli_resume.py)."""
    case_id = alice.create_case("R v Achterberg")
    data = os.urandom(1_300_017)  # not a Padmé length: the padded blob does not tell it
    doc = tmp_path / name
    doc.write_bytes(data)
    monkeypatch.setattr(upload, "PART_SIZE", 256 * 1024)
    home = str(alice.keystore.home)
    with pytest.raises(Unreachable):
        Vault(home, passphrase=PASSPHRASE, transport=_CutAfterParts(2)).put(case_id, [doc])
    return case_id, doc, data


def _resume(alice, case_id, doc, data):
    again = _CutAfterParts(None)
    (result,) = Vault(str(alice.keystore.home), passphrase=PASSPHRASE,
                      transport=again).put(case_id, [doc])
    assert result["sha256"] == hashlib.sha256(data).hexdigest()
    assert again.sent and 0 not in again.sent and 1 not in again.sent  # only what was missing
    assert list((alice.keystore.home / "transfers").iterdir()) == []


def test_T27_interrupted_upload_state_tells_the_thief_nothing(lawyer, tmp_path, monkeypatch):
    """Attack: an upload was cut off; the thief images the home folder and looks for the
    file's name, exact size and SHA-256, which the resume state used to keep in clear."""
    alice = lawyer("alice")
    name = "witness-statement-Okonkwo-draft3.pdf"
    case_id, doc, data = _interrupted_put(alice, tmp_path, monkeypatch, name)

    home = alice.keystore.home
    image = all_file_bytes(home) + b"\n".join(
        p.name.encode() for p in home.rglob("*"))  # file names too
    digest = hashlib.sha256(data)
    secrets = {"file name": name, "file stem": "witness-statement-Okonkwo",
               "SHA-256": digest.digest(), "SHA-256 hex": digest.hexdigest(),
               "path": str(doc.resolve())}
    for label, value in secrets.items():
        for form in encodings_of(value):
            assert form.encode("latin-1") not in image, f"{label} found in CASEVAULT_HOME"
    # A size is short: every form of it is searched, not only the long ones.
    size = str(len(data)).encode()
    assert size not in image and len(data).to_bytes(4, "big") not in image
    # The state is there, sealed: only the identity opens it, so the resume still works.
    states = list(TransferStates(alice.keystore, LocalStateKey.of(alice.identity())))
    assert [s["name"] for _, s in states] == [name]
    _resume(alice, case_id, doc, data)


def test_T27_plaintext_state_of_older_clients_is_sealed_then_resumed(lawyer, tmp_path,
                                                                      monkeypatch):
    """Decision: state an older client left in clear is read once, sealed, and deleted, the
    first time the lawyer uploads; the interrupted upload resumes where it stopped."""
    alice = lawyer("alice")
    name = "instructions-to-counsel.docx"
    case_id, doc, data = _interrupted_put(alice, tmp_path, monkeypatch, name)
    # Put the state back the way older clients kept it: plain JSON named by the clear key.
    states = TransferStates(alice.keystore, LocalStateKey.of(alice.identity()))
    ((sealed_name, state),) = list(states)
    st = doc.stat()
    ident = f"{doc.resolve()}\x00{st.st_size}\x00{st.st_mtime_ns}\x00None"
    old_key = f"up-{case_id}-{hashlib.sha256(ident.encode()).hexdigest()[:32]}"
    assert states.name(old_key) == sealed_name
    folder = alice.keystore.home / "transfers"
    (folder / f"{old_key}.json").write_text(json.dumps(state))
    os.replace(folder / f"{sealed_name}.blob", folder / f"{old_key}.blob")
    states.clear(sealed_name)
    assert name.encode() in all_file_bytes(alice.keystore.home)

    _resume(alice, case_id, doc, data)
    assert name.encode() not in all_file_bytes(alice.keystore.home)
