"""Passphrase key derivation (Argon2id), account subkeys (keyed BLAKE2b) and recovery codes."""

from __future__ import annotations

import os
import secrets
import unicodedata
from dataclasses import dataclass

import nacl.hash
import nacl.pwhash.argon2id as argon2id
from nacl.encoding import RawEncoder

from client.crypto.errors import InvalidRecoveryCode, WeakKdfParameters
from vault.protocol import kdf as kdf_limits

SALT_BYTES = argon2id.SALTBYTES  # 16
MASTER_BYTES = 32
SUBKEY_BYTES = 32

# Floor, default and ceiling are wire names (vault.protocol.kdf): the server stores within them.
DEFAULT_OPS = kdf_limits.DEFAULT_OPS
DEFAULT_MEM = kdf_limits.DEFAULT_MEM
FLOOR_OPS = kdf_limits.FLOOR_OPS
FLOOR_MEM = kdf_limits.FLOOR_MEM
MAX_OPS = kdf_limits.MAX_OPS
MAX_MEM = kdf_limits.MAX_MEM

# Test-only: the one switch that lowers the floor. It is read from the environment of the
# client process and nothing a server sends can set it.
INSECURE_TEST_ENV = "CASEVAULT_TEST_INSECURE_KDF"
TEST_OPS = kdf_limits.TEST_FLOOR_OPS
TEST_MEM = kdf_limits.TEST_FLOOR_MEM

# BLAKE2b personalisation labels (at most 16 bytes); each names one subkey of format cv1.
PERSON_AUTH_KEY = b"cv1/auth_key"
PERSON_KEK = b"cv1/kek"
PERSON_RECOVERY_KEK = b"cv1/rec_kek"
PERSON_RECOVERY_AUTH = b"cv1/rec_auth"
PERSON_RECOVERY_CHECK = b"cv1/rec_check"

RECOVERY_SECRET_BYTES = 20
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_CROCKFORD_ALIASES = {"O": "0", "I": "1", "L": "1"}
_RECOVERY_DATA_CHARS = 32  # 160 bits
_RECOVERY_CHECK_CHARS = 4  # 20 bits: a typo passes with probability about 1 in a million


def _insecure_test_kdf() -> bool:
    return os.environ.get(INSECURE_TEST_ENV) == "1"


@dataclass(frozen=True)
class KdfParams:
    salt: bytes
    ops: int
    mem: int

    def to_json(self) -> dict[str, object]:
        return {"salt": self.salt.hex(), "ops": self.ops, "mem": self.mem}


def check_kdf_params(ops: int, mem: int) -> None:
    """Refuse parameters below the floor (INTERACTIVE) or absurdly high: no KDF downgrade."""
    floor_ops, floor_mem = (TEST_OPS, TEST_MEM) if _insecure_test_kdf() else (FLOOR_OPS, FLOOR_MEM)
    for value in (ops, mem):
        if not isinstance(value, int) or isinstance(value, bool):
            raise WeakKdfParameters()
    if not (floor_ops <= ops <= MAX_OPS and floor_mem <= mem <= MAX_MEM):
        raise WeakKdfParameters()


def new_kdf_params(*, salt: bytes | None = None) -> KdfParams:
    """Parameters for a new account: MODERATE (cheap only under the test switch)."""
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    if _insecure_test_kdf():
        return KdfParams(salt, TEST_OPS, TEST_MEM)
    return KdfParams(salt, DEFAULT_OPS, DEFAULT_MEM)


def normalize_passphrase(passphrase: str) -> bytes:
    return unicodedata.normalize("NFKC", passphrase).encode("utf-8")


def derive_master(passphrase: str, params: KdfParams) -> bytes:
    """master = Argon2id(NFKC(passphrase), salt, ops, mem); checks the parameters first."""
    check_kdf_params(params.ops, params.mem)
    if not isinstance(params.salt, bytes) or len(params.salt) != SALT_BYTES:
        raise WeakKdfParameters()
    return argon2id.kdf(
        MASTER_BYTES, normalize_passphrase(passphrase), params.salt, params.ops, params.mem
    )


def subkey(key: bytes, person: bytes, size: int = SUBKEY_BYTES) -> bytes:
    """Keyed BLAKE2b of the empty message under a personalisation label."""
    return nacl.hash.blake2b(b"", digest_size=size, key=key, person=person, encoder=RawEncoder)


@dataclass(frozen=True)
class AccountKeys:
    auth_key: bytes  # sent to the server at login; the server stores only a hash of it
    kek: bytes  # wraps the private identity; never leaves the client


def account_keys(master: bytes) -> AccountKeys:
    return AccountKeys(subkey(master, PERSON_AUTH_KEY), subkey(master, PERSON_KEK))


def derive_account_keys(passphrase: str, params: KdfParams) -> AccountKeys:
    return account_keys(derive_master(passphrase, params))


# ---------------------------------------------------------------- recovery


@dataclass(frozen=True)
class RecoveryKeys:
    recovery_key: bytes  # wraps the second copy of the private identity
    recovery_auth_key: bytes  # proves knowledge of the code; the server stores a hash of it


def recovery_keys(secret: bytes) -> RecoveryKeys:
    if len(secret) != RECOVERY_SECRET_BYTES:
        raise InvalidRecoveryCode("a recovery secret is 20 bytes")
    return RecoveryKeys(subkey(secret, PERSON_RECOVERY_KEK), subkey(secret, PERSON_RECOVERY_AUTH))


def _to_base32(value: int, chars: int) -> str:
    return "".join(_CROCKFORD[(value >> (5 * (chars - 1 - i))) & 31] for i in range(chars))


def _checksum(secret: bytes) -> str:
    digest = nacl.hash.blake2b(
        secret, digest_size=4, person=PERSON_RECOVERY_CHECK, encoder=RawEncoder
    )
    return _to_base32(int.from_bytes(digest, "big") >> 12, _RECOVERY_CHECK_CHARS)


def format_recovery_code(secret: bytes) -> str:
    """36 Crockford base32 characters in 9 groups of 4; the last group is a checksum."""
    if len(secret) != RECOVERY_SECRET_BYTES:
        raise InvalidRecoveryCode("a recovery secret is 20 bytes")
    text = _to_base32(int.from_bytes(secret, "big"), _RECOVERY_DATA_CHARS) + _checksum(secret)
    return "-".join(text[i : i + 4] for i in range(0, len(text), 4))


def generate_recovery_code() -> tuple[str, bytes]:
    """A new (printable code, secret) pair; show the code once, keep nothing else."""
    secret = secrets.token_bytes(RECOVERY_SECRET_BYTES)
    return format_recovery_code(secret), secret


def parse_recovery_code(text: str) -> bytes:
    """Accept any case, spaces and dashes and the usual look-alikes; reject typos."""
    cleaned = "".join(ch for ch in text.upper() if ch not in " -\t\n")
    cleaned = "".join(_CROCKFORD_ALIASES.get(ch, ch) for ch in cleaned)
    if len(cleaned) != _RECOVERY_DATA_CHARS + _RECOVERY_CHECK_CHARS:
        raise InvalidRecoveryCode("a recovery code has 36 letters and digits")
    if any(ch not in _CROCKFORD for ch in cleaned):
        raise InvalidRecoveryCode("the recovery code contains a character it cannot have")
    value = 0
    for ch in cleaned[:_RECOVERY_DATA_CHARS]:
        value = (value << 5) | _CROCKFORD.index(ch)
    secret = value.to_bytes(RECOVERY_SECRET_BYTES, "big")
    if _checksum(secret) != cleaned[_RECOVERY_DATA_CHARS:]:
        raise InvalidRecoveryCode("the recovery code has a typo (its checksum does not match)")
    return secret
