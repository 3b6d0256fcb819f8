"""Local state sealed under the identity: what CASEVAULT_HOME keeps about work in progress (the
resume state of an interrupted upload names the file, its exact size and its SHA-256) must
tell a thief of the laptop nothing, and neither may the names of the files that hold it.

Both keys come from the private identity, which is on disk only wrapped under the passphrase
(or the recovery code), so they need no storage of their own and survive a passphrase change
or a recovery, which keep the identity:

    seal_key = BLAKE2b(key = sign_seed, person "cv1/local_state", 32)
    name_key = BLAKE2b(key = sign_seed, person "cv1/local_name", 32)
    name(text) = hex(BLAKE2b(text, key = name_key, 16))
    sealed = AEAD(seal_key, ad = labelled("cv1/local-state", purpose, name), plaintext)

The AD binds a sealed file to its purpose and its own name, so files cannot be swapped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import nacl.hash
from nacl.encoding import RawEncoder

from client.crypto import _aead
from client.crypto.kdf import subkey
from client.crypto.keys import Identity

PERSON_LOCAL_STATE = b"cv1/local_state"
PERSON_LOCAL_NAME = b"cv1/local_name"
LABEL_LOCAL_STATE = "cv1/local-state"
NAME_BYTES = 16  # 128 bits: names never collide, and a guess cannot be confirmed without the key


@dataclass(frozen=True)
class LocalStateKey:
    """Seals and names local state of one identity; nothing here is ever written to disk."""

    _seal_key: bytes = field(repr=False)
    _name_key: bytes = field(repr=False)

    @classmethod
    def of(cls, identity: Identity) -> LocalStateKey:
        return cls(subkey(identity.sign_seed, PERSON_LOCAL_STATE),
                   subkey(identity.sign_seed, PERSON_LOCAL_NAME))

    def name(self, text: str) -> str:
        """A file name for `text` (32 hex digits) that only this identity can compute."""
        return nacl.hash.blake2b(text.encode("utf-8"), digest_size=NAME_BYTES,
                                 key=self._name_key, encoder=RawEncoder).hex()

    def seal(self, purpose: str, name: str, plaintext: bytes) -> bytes:
        return _aead.seal(self._seal_key, plaintext, _aead.labelled(LABEL_LOCAL_STATE, purpose,
                                                                    name))

    def open(self, purpose: str, name: str, sealed: bytes) -> bytes:
        """The plaintext, or IntegrityError (another identity's file, a swapped or damaged one)."""
        return _aead.open_(self._seal_key, sealed,
                           _aead.labelled(LABEL_LOCAL_STATE, purpose, name), what="local state")
