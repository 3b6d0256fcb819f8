"""Signed notes and checkpoints: the Go reference vector, round trips, and strict rejection of
everything that is not exactly one well-formed, correctly signed note."""

from __future__ import annotations

import base64
import hashlib

import nacl.signing
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vault.protocol import checkpoint as cp

# golang.org/x/mod/sumdb/note: the package documentation's example.
GO_SIGNER = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT + "\n— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZS"
    "NXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
ORIGIN = "casevault.example/log"


def _go_signing_key() -> nacl.signing.SigningKey:
    raw = base64.b64decode(GO_SIGNER.split("+", 4)[4])
    assert raw[0] == cp.ED25519_TYPE
    return nacl.signing.SigningKey(raw[1:])


@pytest.fixture
def log_key() -> nacl.signing.SigningKey:
    return nacl.signing.SigningKey(hashlib.sha256(b"test log key").digest())


@pytest.fixture
def verifier(log_key) -> cp.NoteVerifier:
    return cp.NoteVerifier(ORIGIN, bytes(log_key.verify_key))


def test_go_reference_note_is_reproduced_byte_for_byte():
    key = _go_signing_key()
    assert cp.sign_note(GO_TEXT, "PeterNeumann", key) == GO_NOTE
    verifier = cp.NoteVerifier.from_vkey(GO_VKEY)
    assert verifier.key_id.hex() == "c74f20a3"
    assert verifier.vkey() == GO_VKEY
    assert bytes(key.verify_key) == verifier.public_key
    assert cp.verify_note(GO_NOTE, verifier) == GO_TEXT
    assert cp.verify_note(GO_NOTE.encode("utf-8"), verifier) == GO_TEXT


def test_vkey_with_plus_in_its_base64_parses():
    vkey = "TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6"
    verifier = cp.NoteVerifier.from_vkey(vkey)
    assert verifier.name == "TEST"


@pytest.mark.parametrize(
    "vkey",
    [
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # wrong id
        "PeterNeumann+c74f20a3+AhpdZ2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # wrong type
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10",  # short key
        "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # upper-case id
        "PeterNeumann+c74f20a3",
        "+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ],
)
def test_mangled_verifier_keys_are_refused(vkey):
    with pytest.raises(cp.NoteError):
        cp.NoteVerifier.from_vkey(vkey)


def test_checkpoint_round_trip(log_key, verifier):
    root = hashlib.sha256(b"root").digest()
    note = cp.sign_checkpoint(cp.Checkpoint(ORIGIN, 20852163, root), log_key)
    lines = note.split("\n")
    assert lines[:4] == [ORIGIN, "20852163", base64.b64encode(root).decode(), ""]
    assert lines[4].startswith("— " + ORIGIN + " ")
    sig = base64.b64decode(lines[4].split(" ")[2])
    assert sig[:4] == hashlib.sha256(
        ORIGIN.encode() + b"\n\x01" + bytes(log_key.verify_key)
    ).digest()[:4]
    opened = cp.open_checkpoint(note, verifier)
    assert (opened.origin, opened.size, opened.root_hash) == (ORIGIN, 20852163, root)


def test_empty_tree_checkpoint(log_key, verifier):
    root = hashlib.sha256(b"").digest()
    note = cp.sign_checkpoint(cp.Checkpoint(ORIGIN, 0, root), log_key)
    assert cp.open_checkpoint(note, verifier).size == 0


def test_forged_signature_is_refused(log_key, verifier):
    note = cp.sign_checkpoint(cp.Checkpoint(ORIGIN, 5, b"\x01" * 32), log_key)
    attacker = nacl.signing.SigningKey.generate()
    forged = cp.sign_checkpoint(cp.Checkpoint(ORIGIN, 5, b"\x02" * 32), attacker)
    with pytest.raises(cp.NoteError, match="not signed by the log key"):
        cp.open_checkpoint(forged, verifier)
    # The attacker's signature line claims the log's key id: it must be checked and fail.
    good_line = note.split("\n")[4]
    swapped = forged.split("\n\n")[0] + "\n\n" + good_line + "\n"
    with pytest.raises(cp.NoteError, match="does not verify"):
        cp.open_checkpoint(swapped, verifier)


def test_edited_text_is_refused(log_key, verifier):
    note = cp.sign_checkpoint(cp.Checkpoint(ORIGIN, 5, b"\x01" * 32), log_key)
    with pytest.raises(cp.NoteError):
        cp.open_checkpoint(note.replace("\n5\n", "\n6\n"), verifier)


def test_unknown_signatures_are_ignored_but_a_known_failing_one_rejects(log_key, verifier):
    note = cp.sign_checkpoint(cp.Checkpoint(ORIGIN, 7, b"\x03" * 32), log_key)
    witness = nacl.signing.SigningKey.generate()
    text = note.split("\n\n")[0] + "\n"
    witness_line = cp.sign_note(text, "witness.example/w1", witness).split("\n\n")[1]
    cosigned = note + witness_line
    assert cp.open_checkpoint(cosigned, verifier).size == 7
    # Same name and key id as the log key, garbage signature: the whole note is rejected.
    bad_sig = base64.b64encode(verifier.key_id + b"\x00" * 64).decode()
    with pytest.raises(cp.NoteError):
        cp.open_checkpoint(note + f"— {ORIGIN} {bad_sig}\n", verifier)


def test_checkpoint_for_another_origin_is_refused(log_key):
    note = cp.sign_checkpoint(cp.Checkpoint("other.example/log", 1, b"\x00" * 32), log_key)
    wrong = cp.NoteVerifier("other.example/log", bytes(log_key.verify_key))
    assert cp.open_checkpoint(note, wrong).origin == "other.example/log"
    # A verifier for our origin does not know that key name at all.
    with pytest.raises(cp.NoteError):
        cp.open_checkpoint(note, cp.NoteVerifier(ORIGIN, bytes(log_key.verify_key)))


def _signed(text: str, key: nacl.signing.SigningKey, name: str = ORIGIN) -> str:
    """Sign arbitrary text bypassing the checkpoint constructor (to build malformed bodies)."""
    sig = key.sign(text.encode()).signature
    kid = cp.ed25519_key_id(name, bytes(key.verify_key))
    return f"{text}\n— {name} {base64.b64encode(kid + sig).decode()}\n"


ROOT_B64 = base64.b64encode(b"\x05" * 32).decode()
URL_ROOT_B64 = base64.urlsafe_b64encode(b"\xff" * 32).decode()


@pytest.mark.parametrize(
    "text",
    [
        f"{ORIGIN}\n05\n{ROOT_B64}\n",  # leading zero
        f"{ORIGIN}\n-1\n{ROOT_B64}\n",
        f"{ORIGIN}\n+5\n{ROOT_B64}\n",
        f"{ORIGIN}\n 5\n{ROOT_B64}\n",
        f"{ORIGIN}\n5\n{ROOT_B64[:-1]}\n",  # no padding
        f"{ORIGIN}\n5\n{base64.b64encode(b'x' * 31).decode()}\n",  # short root
        f"{ORIGIN}\n5\n{URL_ROOT_B64}\n",  # url alphabet
        f"{ORIGIN}\n5\n{ROOT_B64}\nextension\n",  # extension lines: this log emits none
        f"{ORIGIN}\n5\n",
        f"\n5\n{ROOT_B64}\n",
        f"{ORIGIN}\n5\n{ROOT_B64}",  # text without final newline
        f"{ORIGIN}\n99999999999999999999\n{ROOT_B64}\n",
    ],
)
def test_malformed_checkpoint_bodies_are_refused_even_when_signed(log_key, verifier, text):
    with pytest.raises(cp.NoteError):
        cp.open_checkpoint(_signed(text, log_key), verifier)


def test_malformed_notes_are_refused(log_key, verifier):
    good = cp.sign_checkpoint(cp.Checkpoint(ORIGIN, 5, b"\x05" * 32), log_key)
    text, sig_line = good.split("\n\n")
    sig_line = sig_line.rstrip("\n")
    bad = [
        good[:-1],  # no final newline
        text + "\n",  # no signatures
        text + "\n\n",  # empty signature block
        text + "\n\n" + sig_line.replace("— ", "-- ") + "\n",
        text + "\n\n" + sig_line.replace("— ", "—  ") + "\n",
        text + "\n\n" + sig_line + " \n",
        text + "\n\n" + sig_line + "\n\n",
        text + "\n\n" + sig_line.replace("=", "") + "\n",  # unpadded base64
        text + "\n\n" + sig_line + "\r\n",
        good.replace(ORIGIN + "\n5", ORIGIN + "\t\n5", 1),  # control character
        text + "\n\n" + (sig_line + "\n") * (cp.MAX_SIGNATURES + 1),
        text + "\n\n— " + ORIGIN + " " + base64.b64encode(b"abcd").decode() + "\n",
        "\ud800" + good,  # lone surrogate: not UTF-8
        b"\xff" + good.encode(),
    ]
    for note in bad:
        with pytest.raises(cp.NoteError):
            cp.open_checkpoint(note, verifier)


@pytest.mark.parametrize("name", ["", "a b", "a+b", "a\u00a0b", "a\nb"])
def test_bad_key_names_are_refused(name):
    with pytest.raises(cp.NoteError):
        cp.check_key_name(name)


def test_checkpoint_constructor_checks_fields():
    for args in [("", 1, b"\x00" * 32), (ORIGIN, -1, b"\x00" * 32), (ORIGIN, 1, b"\x00" * 31),
                 (ORIGIN, True, b"\x00" * 32), ("a\nb", 1, b"\x00" * 32)]:
        with pytest.raises(cp.NoteError):
            cp.Checkpoint(*args)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_parser_fuzz_bytes_never_crashes_and_never_accepts(blob):
    verifier = cp.NoteVerifier(ORIGIN, bytes(nacl.signing.SigningKey(b"\x01" * 32).verify_key))
    with pytest.raises(cp.NoteError):
        cp.open_checkpoint(blob, verifier)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_parser_fuzz_mutations_of_a_valid_note(data):
    key = nacl.signing.SigningKey(b"\x02" * 32)
    verifier = cp.NoteVerifier(ORIGIN, bytes(key.verify_key))
    size = data.draw(st.integers(0, 2**40))
    good = cp.sign_checkpoint(cp.Checkpoint(ORIGIN, size, b"\x07" * 32), key)
    pos = data.draw(st.integers(0, len(good) - 1))
    action = data.draw(st.sampled_from(["delete", "insert", "replace"]))
    char = data.draw(st.characters(codec="utf-8"))
    if action == "delete":
        mutated = good[:pos] + good[pos + 1 :]
    elif action == "insert":
        mutated = good[:pos] + char + good[pos:]
    else:
        mutated = good[:pos] + char + good[pos + 1 :]
    if mutated == good:
        return
    try:
        opened = cp.open_checkpoint(mutated, verifier)
    except cp.NoteError:
        return
    # The only mutations that may survive leave the signed statement itself unchanged.
    assert cp.sign_checkpoint(opened, key) == good
    pytest.fail("a mutated note was accepted")
