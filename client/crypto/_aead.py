"""A thin facade over XChaCha20-Poly1305 (IETF) that checks sizes and hides nonces.

A sealed box is `nonce (24) || ciphertext || tag (16)`. Nonces are random: 192 bits make
collisions negligible however many records one key seals.
"""

from __future__ import annotations

import secrets

import nacl.bindings as sodium
import nacl.exceptions

from client.crypto.errors import IntegrityError

KEY_BYTES = sodium.crypto_aead_xchacha20poly1305_ietf_KEYBYTES  # 32
NONCE_BYTES = sodium.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES  # 24
TAG_BYTES = sodium.crypto_aead_xchacha20poly1305_ietf_ABYTES  # 16


def _check_key(key: bytes) -> None:
    if not isinstance(key, bytes) or len(key) != KEY_BYTES:
        raise ValueError("an XChaCha20-Poly1305 key is 32 bytes")


def seal(key: bytes, plaintext: bytes, ad: bytes, *, nonce: bytes | None = None) -> bytes:
    _check_key(key)
    nonce = secrets.token_bytes(NONCE_BYTES) if nonce is None else nonce
    if len(nonce) != NONCE_BYTES:
        raise ValueError("an XChaCha20-Poly1305 nonce is 24 bytes")
    return nonce + sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, ad, nonce, key)


def open_(key: bytes, box: bytes, ad: bytes, *, what: str) -> bytes:
    _check_key(key)
    if not isinstance(box, bytes) or len(box) < NONCE_BYTES + TAG_BYTES:
        raise IntegrityError(what)
    try:
        return sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(
            box[NONCE_BYTES:], ad, box[:NONCE_BYTES], key
        )
    except (nacl.exceptions.CryptoError, ValueError) as exc:
        raise IntegrityError(what) from exc


def labelled(label: str, *parts: str | int) -> bytes:
    """Associated data: `label || 0x00 || part || 0x00 || ...` (parts never contain 0x00)."""
    out = [label.encode("ascii")]
    for part in parts:
        text = str(part)
        if "\x00" in text:
            raise ValueError("associated data parts cannot contain NUL")
        out.append(text.encode("utf-8"))
    return b"\x00".join(out)
