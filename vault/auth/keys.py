"""The server's own secret, kept in a file outside the database (data_dir/server.key).

One random 32-byte master secret; purpose-bound subkeys are derived from it with keyed BLAKE2b,
so a seized database alone does not reveal TOTP secrets or which prelogin salts are fake.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

MASTER_KEY_BYTES = 32
_NONCE_BYTES = 12
_TOTP_AD = b"cv1/server/totp-secret\x00"


class ServerKeyError(RuntimeError):
    """The server key file is missing, unreadable or malformed."""


def _subkey(master: bytes, label: bytes, size: int = 32) -> bytes:
    return hashlib.blake2b(b"", key=master, person=label, digest_size=size).digest()


def load_or_create_master_key(path: Path) -> bytes:
    """Read the key file, creating it (mode 0600, never overwritten) on first start."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_bytes(MASTER_KEY_BYTES))
            handle.flush()
            os.fsync(handle.fileno())
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ServerKeyError(f"cannot read server key file {path}: {exc.strerror}") from exc
    if len(data) != MASTER_KEY_BYTES:
        raise ServerKeyError(f"server key file {path} is malformed")
    return data


class ServerKeys:
    """Purpose-bound keys derived from the master secret."""

    def __init__(self, master: bytes) -> None:
        if len(master) != MASTER_KEY_BYTES:
            raise ServerKeyError("server master key must be 32 bytes")
        self._totp = ChaCha20Poly1305(_subkey(master, b"cv1-totp-at-rst"))
        self._prelogin = _subkey(master, b"cv1-prelogin")

    @classmethod
    def from_file(cls, path: Path) -> ServerKeys:
        return cls(load_or_create_master_key(path))

    def seal_totp_secret(self, user_id: str, secret: bytes) -> bytes:
        nonce = secrets.token_bytes(_NONCE_BYTES)
        return nonce + self._totp.encrypt(nonce, secret, _TOTP_AD + user_id.encode("ascii"))

    def open_totp_secret(self, user_id: str, sealed: bytes) -> bytes:
        nonce, ciphertext = sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:]
        try:
            return self._totp.decrypt(nonce, ciphertext, _TOTP_AD + user_id.encode("ascii"))
        except InvalidTag as exc:
            # Wrong server.key or a row moved to another user: refuse, never guess.
            raise ServerKeyError("TOTP secret does not open with this server key") from exc

    def fake_kdf_salt(self, username: str, size: int = 16) -> bytes:
        """Deterministic salt for unknown names, indistinguishable without the server key."""
        return hashlib.blake2b(
            username.encode("utf-8"), key=self._prelogin, digest_size=size
        ).digest()
