"""A user's identity: Ed25519 signing key and ML-KEM-768+X25519 HPKE key, and its wrapping."""

from __future__ import annotations

import json
import time as _time
from dataclasses import dataclass, field

import nacl.signing
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519

from client.crypto import _aead
from client.crypto.errors import IntegrityError
from vault.protocol.encoding import FORMAT_VERSION, EncodingError, b64d, b64e, canonical_json
from vault.protocol.ids import is_valid_id
from vault.protocol.records import (
    LABEL_IDENTITY,
    IdentityRecord,
    RecordError,
    identity_body,
    sign_record,
    verify_identity_record,
)

LABEL_IDENTITY_WRAP = "cv1/identity-wrap"
PURPOSE_KEK = "kek"
PURPOSE_RECOVERY = "recovery"
_PURPOSES = (PURPOSE_KEK, PURPOSE_RECOVERY)

SIGN_SEED_BYTES = 32
MLKEM_SEED_BYTES = 64
X25519_BYTES = 32
_SECRET_FIELDS = ("v", "user_id", "username", "created_at", "sign_seed", "mlkem_seed", "x25519")


def hpke_public_key(kem_pk: bytes) -> hpke.MLKEM768X25519PublicKey:
    """Rebuild the hybrid public key from `ML-KEM-768 public (1184) || X25519 public (32)`."""
    if len(kem_pk) != 1184 + X25519_BYTES:
        raise IntegrityError("public key")
    try:
        return hpke.MLKEM768X25519PublicKey(
            mlkem.MLKEM768PublicKey.from_public_bytes(kem_pk[:1184]),
            x25519.X25519PublicKey.from_public_bytes(kem_pk[1184:]),
        )
    except ValueError as exc:
        raise IntegrityError("public key") from exc


@dataclass(frozen=True)
class Identity:
    """The private identity. Only seeds are kept; key objects are rebuilt from them."""

    user_id: str
    username: str
    created_at: int
    sign_seed: bytes = field(repr=False)
    mlkem_seed: bytes = field(repr=False)
    x25519_private: bytes = field(repr=False)

    @classmethod
    def generate(cls, user_id: str, username: str, *, now: int | None = None) -> Identity:
        return cls._from_parts(
            user_id,
            username,
            int(_time.time()) if now is None else now,
            bytes(nacl.signing.SigningKey.generate()),
            mlkem.MLKEM768PrivateKey.generate().private_bytes_raw(),
            x25519.X25519PrivateKey.generate().private_bytes_raw(),
        )

    @classmethod
    def _from_parts(
        cls,
        user_id: str,
        username: str,
        created_at: int,
        sign_seed: bytes,
        mlkem_seed: bytes,
        x25519_private: bytes,
    ) -> Identity:
        """Deterministic construction for vectors and unwrapping."""
        if not is_valid_id(user_id):
            raise ValueError("user_id is 32 lowercase hex digits")
        if (len(sign_seed), len(mlkem_seed), len(x25519_private)) != (32, 64, 32):
            raise ValueError("identity seeds have the wrong sizes")
        return cls(user_id, username, created_at, sign_seed, mlkem_seed, x25519_private)

    @property
    def signing_key(self) -> nacl.signing.SigningKey:
        return nacl.signing.SigningKey(self.sign_seed)

    @property
    def sign_pk(self) -> bytes:
        return bytes(self.signing_key.verify_key)

    @property
    def kem_private(self) -> hpke.MLKEM768X25519PrivateKey:
        return hpke.MLKEM768X25519PrivateKey(
            mlkem.MLKEM768PrivateKey.from_seed_bytes(self.mlkem_seed),
            x25519.X25519PrivateKey.from_private_bytes(self.x25519_private),
        )

    @property
    def kem_pk(self) -> bytes:
        m = mlkem.MLKEM768PrivateKey.from_seed_bytes(self.mlkem_seed).public_key()
        x = x25519.X25519PrivateKey.from_private_bytes(self.x25519_private).public_key()
        return m.public_bytes_raw() + x.public_bytes_raw()

    def public_record(self) -> dict[str, str]:
        """The self-signed identity record (signed envelope) to publish."""
        body = identity_body(
            user_id=self.user_id,
            username=self.username,
            sign_pk=self.sign_pk,
            kem_pk=self.kem_pk,
            created_at=self.created_at,
        )
        return sign_record(LABEL_IDENTITY, body, self.signing_key)

    def record(self) -> IdentityRecord:
        return verify_identity_record(self.public_record())

    def sign(self, label: str, body: dict) -> dict[str, str]:
        """Sign a protocol record body under its label (identity, membership, grant, ...)."""
        try:
            return sign_record(label, body, self.signing_key)
        except (RecordError, EncodingError) as exc:
            raise ValueError(str(exc)) from exc


def _wrap_ad(user_id: str, purpose: str) -> bytes:
    if purpose not in _PURPOSES:
        raise ValueError("purpose is 'kek' or 'recovery'")
    return _aead.labelled(LABEL_IDENTITY_WRAP, user_id, purpose)


def wrap_identity(
    identity: Identity, key: bytes, purpose: str, *, nonce: bytes | None = None
) -> bytes:
    """Encrypt the private identity under `kek` or the recovery key (AD: user id + purpose)."""
    secret = {
        "v": FORMAT_VERSION,
        "user_id": identity.user_id,
        "username": identity.username,
        "created_at": identity.created_at,
        "sign_seed": b64e(identity.sign_seed),
        "mlkem_seed": b64e(identity.mlkem_seed),
        "x25519": b64e(identity.x25519_private),
    }
    return _aead.seal(key, canonical_json(secret), _wrap_ad(identity.user_id, purpose), nonce=nonce)


def unwrap_identity(blob: bytes, key: bytes, user_id: str, purpose: str) -> Identity:
    """Decrypt a wrapped identity; any mismatch (key, user, purpose, shape) is IntegrityError."""
    plaintext = _aead.open_(key, blob, _wrap_ad(user_id, purpose), what="identity")
    try:
        secret = json.loads(plaintext)
        if (
            not isinstance(secret, dict)
            or tuple(sorted(secret)) != tuple(sorted(_SECRET_FIELDS))
            or secret["v"] != FORMAT_VERSION
            or secret["user_id"] != user_id
        ):
            raise ValueError("identity fields")
        return Identity._from_parts(
            user_id,
            secret["username"],
            secret["created_at"],
            b64d(secret["sign_seed"]),
            b64d(secret["mlkem_seed"]),
            b64d(secret["x25519"]),
        )
    except (ValueError, TypeError, KeyError, EncodingError) as exc:
        raise IntegrityError("identity") from exc
