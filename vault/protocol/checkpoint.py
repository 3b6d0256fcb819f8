"""Signed notes (c2sp.org/signed-note) and log checkpoints (c2sp.org/tlog-checkpoint), Ed25519.

A checkpoint is the note text

    <origin>\\n<tree size>\\n<base64 root hash>\\n

followed by a blank line and one or more lines `— <key name> <base64(key id || signature)>`.
The key id of an Ed25519 key is SHA-256(name || 0x0A || 0x01 || public key)[:4].

Parsing is strict: anything that is not exactly one well-formed note is rejected, so one
checkpoint has one text and two parties comparing texts compare the same statement. Signatures
from keys we do not know are ignored (the spec requires it, and it lets witnesses cosign); a
known key whose signature fails makes the whole note invalid.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

import nacl.exceptions
import nacl.signing

ED25519_TYPE = 0x01
KEY_ID_SIZE = 4
ED25519_SIG_SIZE = 64
ED25519_PUBLIC_KEY_SIZE = 32
MAX_NOTE_BYTES = 64 * 1024
MAX_SIGNATURES = 100
MAX_TREE_SIZE = 1 << 62
HASH_SIZE = 32

_EM_DASH = "\u2014"
_SIZE_RE = re.compile(r"^(0|[1-9][0-9]{0,18})$")


class NoteError(ValueError):
    """A note or checkpoint is malformed or its signature does not verify."""


def _strict_b64decode(text: str) -> bytes:
    """Standard base64 with padding, and nothing that decodes to the same bytes another way."""
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError) as exc:
        raise NoteError("invalid base64") from exc
    if base64.b64encode(data).decode("ascii") != text:
        raise NoteError("non-canonical base64")
    return data


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def check_key_name(name: str) -> str:
    if not isinstance(name, str) or not name:
        raise NoteError("key name must be non-empty")
    if "+" in name or any(ch.isspace() for ch in name) or any(ord(ch) < 0x20 for ch in name):
        raise NoteError("key name must not contain spaces, '+' or control characters")
    return name


def ed25519_key_id(name: str, public_key: bytes) -> bytes:
    check_key_name(name)
    digest = hashlib.sha256(
        name.encode("utf-8") + b"\x0a" + bytes([ED25519_TYPE]) + public_key
    ).digest()
    return digest[:KEY_ID_SIZE]


@dataclass(frozen=True)
class NoteVerifier:
    """A trusted Ed25519 note key: its name, public key and derived key id."""

    name: str
    public_key: bytes

    def __post_init__(self) -> None:
        check_key_name(self.name)
        if not isinstance(self.public_key, bytes) or len(self.public_key) != 32:
            raise NoteError("an Ed25519 public key is 32 bytes")

    @property
    def key_id(self) -> bytes:
        return ed25519_key_id(self.name, self.public_key)

    def vkey(self) -> str:
        """The verifier key string used by Go's note package: name+hexid+base64(type||key)."""
        return f"{self.name}+{self.key_id.hex()}+{_b64(bytes([ED25519_TYPE]) + self.public_key)}"

    @classmethod
    def from_vkey(cls, vkey: str) -> NoteVerifier:
        # At most two splits: the base64 key material may itself contain '+'.
        parts = vkey.split("+", 2) if isinstance(vkey, str) else []
        if len(parts) != 3 or not re.fullmatch(r"[0-9a-f]{8}", parts[1]):
            raise NoteError("malformed verifier key")
        raw = _strict_b64decode(parts[2])
        if len(raw) != 1 + ED25519_PUBLIC_KEY_SIZE or raw[0] != ED25519_TYPE:
            raise NoteError("verifier key is not an Ed25519 key")
        verifier = cls(parts[0], raw[1:])
        if verifier.key_id.hex() != parts[1]:
            raise NoteError("verifier key id does not match its key")
        return verifier


@dataclass(frozen=True)
class NoteSignature:
    name: str
    key_id: bytes
    signature: bytes


@dataclass(frozen=True)
class Note:
    text: str
    signatures: tuple[NoteSignature, ...]


def _check_note_chars(note: str) -> None:
    try:
        encoded = note.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise NoteError("note is not valid UTF-8") from exc
    if len(encoded) > MAX_NOTE_BYTES:
        raise NoteError("note too large")
    if any(ord(ch) < 0x20 and ch != "\n" for ch in note):
        raise NoteError("note contains control characters")


def parse_note(note: str | bytes) -> Note:
    """Split a signed note into its text and signature lines; no signature is checked here."""
    if isinstance(note, bytes):
        if len(note) > MAX_NOTE_BYTES:
            raise NoteError("note too large")
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NoteError("note is not valid UTF-8") from exc
    if not isinstance(note, str):
        raise NoteError("a note is text")
    _check_note_chars(note)
    # The text is separated from the signatures by the last blank line.
    split = note.rfind("\n\n")
    if split < 0:
        raise NoteError("note has no signature block")
    text, block = note[: split + 1], note[split + 2 :]
    if not block.endswith("\n"):
        raise NoteError("note must end with a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError("too many signatures")
    signatures = []
    for line in lines:
        if not line.startswith(_EM_DASH + " "):
            raise NoteError("malformed signature line")
        fields = line[2:].split(" ")
        if len(fields) != 2:
            raise NoteError("malformed signature line")
        name, encoded = fields
        check_key_name(name)
        raw = _strict_b64decode(encoded)
        if len(raw) <= KEY_ID_SIZE:
            raise NoteError("signature too short")
        signatures.append(NoteSignature(name, raw[:KEY_ID_SIZE], raw[KEY_ID_SIZE:]))
    return Note(text, tuple(signatures))


def sign_note(text: str, name: str, signing_key: nacl.signing.SigningKey) -> str:
    """A signed note with one Ed25519 signature over `text` (which must end in a newline)."""
    check_key_name(name)
    if not text.endswith("\n"):
        raise NoteError("note text must end with a newline")
    _check_note_chars(text)
    public_key = bytes(signing_key.verify_key)
    signature = signing_key.sign(text.encode("utf-8")).signature
    line = f"{_EM_DASH} {name} {_b64(ed25519_key_id(name, public_key) + signature)}\n"
    note = f"{text}\n{line}"
    if parse_note(note).text != text:
        # A text with a trailing blank line would be split in the wrong place when read back.
        raise NoteError("note text must not end with a blank line")
    return note


def verify_note(note: str | bytes, verifier: NoteVerifier) -> str:
    """Return the note text if `verifier` signed it; raise NoteError otherwise."""
    parsed = parse_note(note)
    verify_key = nacl.signing.VerifyKey(verifier.public_key)
    message = parsed.text.encode("utf-8")
    verified = False
    for sig in parsed.signatures:
        if sig.name != verifier.name or sig.key_id != verifier.key_id:
            continue  # someone else's signature, e.g. a witness: ignored as the spec requires
        if len(sig.signature) != ED25519_SIG_SIZE:
            raise NoteError("signature by the log key is malformed")
        try:
            verify_key.verify(message, sig.signature)
        except nacl.exceptions.BadSignatureError as exc:
            raise NoteError("signature by the log key does not verify") from exc
        verified = True
    if not verified:
        raise NoteError("note is not signed by the log key")
    return parsed.text


@dataclass(frozen=True)
class Checkpoint:
    """A log's tree head: origin, tree size and RFC 6962 root hash."""

    origin: str
    size: int
    root_hash: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.origin, str) or not self.origin or "\n" in self.origin:
            raise NoteError("origin must be one non-empty line")
        if (
            not isinstance(self.size, int)
            or isinstance(self.size, bool)
            or not 0 <= self.size <= MAX_TREE_SIZE
        ):
            raise NoteError("tree size out of range")
        if not isinstance(self.root_hash, bytes) or len(self.root_hash) != HASH_SIZE:
            raise NoteError("root hash is 32 bytes")

    def text(self) -> str:
        return f"{self.origin}\n{self.size}\n{_b64(self.root_hash)}\n"


def parse_checkpoint_text(text: str) -> Checkpoint:
    """Parse checkpoint note text strictly; extension lines are refused (this log emits none)."""
    if not isinstance(text, str) or not text.endswith("\n"):
        raise NoteError("checkpoint text must end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) != 3:
        raise NoteError("checkpoint must have exactly origin, size and root hash lines")
    origin, size_text, root_text = lines
    if not origin:
        raise NoteError("empty origin")
    if not _SIZE_RE.fullmatch(size_text):
        raise NoteError("malformed tree size")
    root = _strict_b64decode(root_text)
    checkpoint = Checkpoint(origin, int(size_text), root)
    if checkpoint.text() != text:
        raise NoteError("checkpoint text is not canonical")
    return checkpoint


def sign_checkpoint(checkpoint: Checkpoint, signing_key: nacl.signing.SigningKey) -> str:
    """Sign a checkpoint under the key named after its origin, as tlog-checkpoint recommends."""
    return sign_note(checkpoint.text(), checkpoint.origin, signing_key)


def open_checkpoint(note: str | bytes, verifier: NoteVerifier) -> Checkpoint:
    """Verify the log's signature, then parse; the origin must be the log key's name."""
    checkpoint = parse_checkpoint_text(verify_note(note, verifier))
    if checkpoint.origin != verifier.name:
        raise NoteError("checkpoint is for another log")
    return checkpoint
