"""T15 fuzzing of signed records, checkpoints and file content: hostile bytes from the server
meet each parser, which must fail with its one documented error and nothing else.

- records (vault.protocol.records, membership): RecordError
- signed notes and checkpoints (vault.protocol.checkpoint): NoteError
- Merkle proof verification (vault.protocol.merkle): returns False, never raises
- file content (client.crypto.stream): IntegrityError
"""

from __future__ import annotations

import contextlib
import io
import os

import nacl.signing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from client.crypto.errors import IntegrityError
from client.crypto.stream import MAGIC, decrypt_stream, encrypt_stream
from vault.protocol import merkle
from vault.protocol.checkpoint import (
    Checkpoint,
    NoteError,
    NoteVerifier,
    open_checkpoint,
    parse_checkpoint_text,
    parse_note,
    sign_checkpoint,
)
from vault.protocol.encoding import b64e, canonical_json
from vault.protocol.membership import replay_membership
from vault.protocol.records import (
    LABEL_GRANT,
    LABEL_IDENTITY,
    LABEL_MANIFEST,
    LABEL_MEMBERSHIP,
    LABEL_TOMBSTONE,
    RecordError,
    open_envelope,
    parse_grant,
    parse_manifest,
    parse_tombstone,
    verify_identity_record,
)

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LABELS = [LABEL_IDENTITY, LABEL_MEMBERSHIP, LABEL_GRANT, LABEL_MANIFEST, LABEL_TOMBSTONE]


def _json_of(integers):
    return st.recursive(
        st.none() | st.booleans() | integers | st.text(max_size=40),
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
        ),
        max_leaves=12,
    )


# Anything JSON can carry (envelopes), and what a canonical body can carry (64-bit integers).
_json = _json_of(st.integers(-(2**70), 2**70))
_body_json = _json_of(st.integers(-(2**63), 2**63 - 1))
_field_names = st.sampled_from(
    [
        "v",
        "case_id",
        "file_id",
        "version",
        "generation",
        "seq",
        "prev_hash",
        "action",
        "subject",
        "subject_fp",
        "role",
        "author",
        "time",
        "key_link",
        "member",
        "member_fp",
        "sealed_key",
        "granter",
        "user_id",
        "username",
        "sign_pk",
        "kem_pk",
        "created_at",
        "uploader",
        "blob_size",
        "blob_sha256",
        "meta_hash",
        "wrapped_key_hash",
        "membership_seq",
        "deleter",
    ]
)
_values = st.one_of(
    _body_json,
    st.just("cv1"),
    st.text("0123456789abcdef", min_size=32, max_size=32),
    st.text("0123456789abcdef", min_size=64, max_size=64),
    st.binary(max_size=80).map(b64e),
)
_bodies = st.dictionaries(_field_names, _values, max_size=14)


def _envelopes():
    encoded = _bodies.map(lambda body: b64e(canonical_json(body)))
    return st.one_of(
        st.fixed_dictionaries({"body": encoded, "sig": st.binary(max_size=70).map(b64e)}),
        st.fixed_dictionaries({"body": st.text(max_size=30), "sig": st.text(max_size=30)}),
        _json,
    )


@FUZZ
@given(st.sampled_from(LABELS), _envelopes())
def test_T15_records_raise_only_record_error(label, envelope):
    for parse in (
        lambda: open_envelope(label, envelope),
        lambda: verify_identity_record(envelope),
        lambda: parse_grant(envelope),
        lambda: parse_manifest(envelope),
        lambda: parse_tombstone(envelope),
    ):
        with contextlib.suppress(RecordError):
            parse()


@FUZZ
@given(st.lists(_envelopes(), max_size=4))
def test_T15_membership_replay_raises_only_record_error(entries):
    with contextlib.suppress(RecordError):
        replay_membership(entries, {})


_KEY = nacl.signing.SigningKey(bytes(32))
_VERIFIER = NoteVerifier("casevault.test/log", bytes(_KEY.verify_key))
_GOOD = sign_checkpoint(Checkpoint("casevault.test/log", 5, bytes(range(32))), _KEY)


@FUZZ
@given(st.one_of(st.binary(max_size=300), st.text(max_size=300)))
def test_T15_checkpoint_random_input(note):
    for parse in (
        lambda: parse_note(note),
        lambda: open_checkpoint(note, _VERIFIER),
        lambda: parse_checkpoint_text(note if isinstance(note, str) else note.decode("latin-1")),
    ):
        with contextlib.suppress(NoteError):
            parse()


@FUZZ
@given(st.data())
def test_T15_checkpoint_mutations(data):
    raw = bytearray(_GOOD.encode("utf-8"))
    for _ in range(data.draw(st.integers(1, 3))):
        op = data.draw(st.sampled_from(["flip", "delete", "insert"]))
        pos = data.draw(st.integers(0, len(raw) - 1))
        if op == "flip":
            raw[pos] ^= data.draw(st.integers(1, 255))
        elif op == "delete":
            del raw[pos]
        else:
            raw.insert(pos, data.draw(st.integers(0, 255)))
    try:
        checkpoint = open_checkpoint(bytes(raw), _VERIFIER)
    except NoteError:
        return
    # Anything still accepted says exactly what the log key signed.
    assert checkpoint == open_checkpoint(_GOOD, _VERIFIER)


@FUZZ
@given(
    st.binary(min_size=0, max_size=40),
    st.integers(-2, 70),
    st.integers(-2, 70),
    st.lists(st.binary(min_size=0, max_size=40), max_size=8),
    st.binary(min_size=0, max_size=40),
)
def test_T15_merkle_verifiers_never_raise(leaf, index, size, proof, root):
    assert merkle.verify_inclusion(leaf, index, size, proof, root) in (True, False)
    assert merkle.verify_consistency(index, size, leaf, root, proof) in (True, False)


_FILE_KEY = bytes(range(32))
_IDS = {"case_id": "a" * 32, "file_id": "b" * 32, "version": 1}


def _decrypt(blob: bytes, size: int) -> None:
    decrypt_stream(io.BytesIO(blob), io.BytesIO(), _FILE_KEY, **_IDS, plaintext_size=size)


@FUZZ
@given(st.binary(max_size=2000), st.integers(-5, 5000))
def test_T15_stream_decrypt_random_bytes(blob, size):
    for candidate in (blob, MAGIC + blob):
        try:
            _decrypt(candidate, size)
        except IntegrityError:
            continue
        raise AssertionError("random bytes decrypted")


_PLAIN = os.urandom(3000)
_SEALED = io.BytesIO()
encrypt_stream(io.BytesIO(_PLAIN), _SEALED, _FILE_KEY, **_IDS)


@FUZZ
@given(st.data())
def test_T15_stream_decrypt_mutated_blob(data):
    blob = bytearray(_SEALED.getvalue())
    op = data.draw(st.sampled_from(["flip", "cut", "extend", "size"]))
    size = len(_PLAIN)
    if op == "flip":
        blob[data.draw(st.integers(0, len(blob) - 1))] ^= data.draw(st.integers(1, 255))
    elif op == "cut":
        del blob[data.draw(st.integers(0, len(blob) - 1)) :]
    elif op == "extend":
        blob += data.draw(st.binary(min_size=1, max_size=64))
    else:
        size = data.draw(st.integers(0, 10_000).filter(lambda n: n != len(_PLAIN)))
    try:
        _decrypt(bytes(blob), size)
    except IntegrityError:
        return
    # Only a declared size with the same Padme length and zero padding can still pass, and
    # then the content is a prefix of the true plaintext (the SHA-256 check catches it later).
    assert op == "size"
