"""cv1's hybrid KEM is X-Wing (HPKE KEM 0x647A), and its stored key is X-Wing's expanded seed.

An X-Wing private key is a 32-byte seed; X-Wing expands it as SHAKE256(seed, 96 bytes) into a
64-byte ML-KEM-768 seed (d || z) and a 32-byte X25519 scalar. cv1 stores those two parts
(`mlkem_seed`, `x25519`; SPEC.md 6.1). These tests take the first test vector of
draft-connolly-cfrg-xwing-kem-10 (section "Test vectors"), expand its seed into a cv1 identity,
and show that (1) the cv1 `kem_pk` is the vector's X-Wing public key, and (2) pyca/cryptography's
HPKE suite used by cv1 decapsulates the vector's X-Wing ciphertext to the vector's shared secret:
a message sealed here with our own RFC 9180 key schedule (suite ids 0x647A / HKDF-SHA256 0x0001
/ ChaCha20-Poly1305 0x0003) from that secret opens only if all three hold.
"""

from __future__ import annotations

import hashlib
import hmac

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from client.crypto import Identity
from client.crypto.seal import HPKE_SUITE

XWING_SEED = bytes.fromhex("7f9c2ba4e88f827d616045507605853ed73b8093f6efbc88eb1a6eacfa66ef26")
# SHA-256 of the vector's 1216-byte public key (ML-KEM-768 public key || X25519 public key).
XWING_PK_SHA256 = "2e816deebcd76c5c80d0cd2d174478871658e8e2ff42bc9d4a6e486372e856bb"
XWING_SS = bytes.fromhex("d2df0522128f09dd8e2c92b1e905c793d8f57a54c3da25861f10bf4ca613e384")
XWING_CT = bytes.fromhex(
    "b83aa828d4d62b9a83ceffe1d3d3bb1ef31264643c070c5798927e41fb07914a273f8f96e7826cd5375a283d"
    "7da885304c5de0516a0f0654243dc5b97f8bfeb831f68251219aabdd723bc6512041acbaef8af44265524942"
    "b902e68ffd23221cda70b1b55d776a92d1143ea3a0c475f63ee6890157c7116dae3f62bf72f60acd2bb8cc31"
    "ce2ba0de364f52b8ed38c79d719715963a5dd3842d8e8b43ab704e4759b5327bf027c63c8fa857c4908d5a8a"
    "7b88ac7f2be394d93c3706ddd4e698cc6ce370101f4d0213254238b4a2e8821b6e414a1cf20f6c1244b69904"
    "6f5a01caa0a1a55516300b40d2048c77cc73afba79afeea9d2c0118bdf2adb8870dc328c5516cc45b1a20581"
    "41039e2c90a110a9e16b318dfb53bd49a126d6b73f215787517b8917cc01cabd107d06859854ee8b4f9861c2"
    "26d3764c87339ab16c3667d2f49384e55456dd40414b70a6af841585f4c90c68725d57704ee8ee7ce6e2f9be"
    "582dbee985e038ffc346ebfb4e22158b6c84374a9ab4a44e1f91de5aac5197f89bc5e5442f51f9a5937b102b"
    "a3beaebf6e1c58380a4a5fedce4a4e5026f88f528f59ffd2db41752b3a3d90efabe463899b7d40870c530c88"
    "41e8712b733668ed033adbfafb2d49d37a44d4064e5863eb0af0a08d47b3cc888373bc05f7a33b841bc2587c"
    "57eb69554e8a3767b7506917b6b70498727f16eac1a36ec8d8cfaf751549f2277db277e8a55a9a5106b23a02"
    "06b4721fa9b3048552c5bd5b594d6e247f38c18c591aea7f56249c72ce7b117afcc3a8621582f9cf71787e18"
    "3dee09367976e98409ad9217a497df888042384d7707a6b78f5f7fb8409e3b535175373461b776002d799cba"
    "d62860be70573ecbe13b246e0da7e93a52168e0fb6a9756b895ef7f0147a0dc81bfa644b088a9228160c0f9a"
    "cf1379a2941cd28c06ebc80e44e17aa2f8177010afd78a97ce0868d1629ebb294c5151812c583daeb8868522"
    "0f4da9118112e07041fcc24d5564a99fdbde28869fe0722387d7a9a4d16e1cc8555917e09944aa5ebaaaec2c"
    "f62693afad42a3f518fce67d273cc6c9fb5472b380e8573ec7de06a3ba2fd5f931d725b493026cb0acbd3fe6"
    "2d00e4c790d965d7a03a3c0b4222ba8c2a9a16e2ac658f572ae0e746eafc4feba023576f08942278a041fb82"
    "a70a595d5bacbf297ce2029898a71e5c3b0d1c6228b485b1ade509b35fbca7eca97b2132e7cb6bc465375146"
    "b7dceac969308ac0c2ac89e7863eb8943015b24314cafb9c7c0e85fe543d56658c213632599efabfc1ec49dd"
    "8c88547bb2cc40c9d38cbd3099b4547840560531d0188cd1e9c23a0ebee0a03d5577d66b1d2bcb4baaf21cc7"
    "fef1e03806ca96299df0dfbc56e1b2b43e4fc20c37f834c4af62127e7dae86c3c25a2f696ac8b589dec71d59"
    "5bfbe94b5ed4bc07d800b330796fda89edb77be0294136139354eb8cd37591578f9c600dd9be8ec6219fdd50"
    "7adf3397ed4d68707b8d13b24ce4cd8fb22851bfe9d632407f31ed6f7cb1600de56f17576740ce2a32fc5145"
    "030145cfb97e63e0e41d354274a079d3e6fb2e15"
)

KEM_XWING, KDF_HKDF_SHA256, AEAD_CHACHA20_POLY1305 = 0x647A, 0x0001, 0x0003
SUITE_ID = b"HPKE" + b"".join(
    i.to_bytes(2, "big") for i in (KEM_XWING, KDF_HKDF_SHA256, AEAD_CHACHA20_POLY1305)
)


def identity_from_xwing_seed(seed: bytes) -> Identity:
    """A cv1 identity holding the X-Wing key of `seed` (its signing seed is irrelevant here)."""
    expanded = hashlib.shake_256(seed).digest(96)
    return Identity._from_parts("0" * 32, "xwing", 0, bytes(32), expanded[:64], expanded[64:])


def _labeled_extract(salt: bytes, label: bytes, ikm: bytes) -> bytes:
    return hmac.digest(salt, b"HPKE-v1" + SUITE_ID + label + ikm, "sha256")


def _labeled_expand(prk: bytes, label: bytes, info: bytes, length: int) -> bytes:
    labeled = length.to_bytes(2, "big") + b"HPKE-v1" + SUITE_ID + label + info
    out, block = b"", b""
    for counter in range(1, -(-length // 32) + 1):
        block = hmac.digest(prk, block + labeled + bytes([counter]), "sha256")
        out += block
    return out[:length]


def seal_with_shared_secret(shared_secret: bytes, enc: bytes, info: bytes, pt: bytes) -> bytes:
    """RFC 9180 base-mode single-shot seal, given the KEM's output instead of running the KEM."""
    context = (
        b"\x00"
        + _labeled_extract(b"", b"psk_id_hash", b"")
        + _labeled_extract(b"", b"info_hash", info)
    )
    secret = _labeled_extract(shared_secret, b"secret", b"")
    key = _labeled_expand(secret, b"key", context, 32)
    nonce = _labeled_expand(secret, b"base_nonce", context, 12)
    return enc + ChaCha20Poly1305(key).encrypt(nonce, pt, b"")


def test_cv1_public_key_is_the_xwing_public_key_of_the_expanded_seed():
    identity = identity_from_xwing_seed(XWING_SEED)
    assert len(identity.kem_pk) == 1216
    assert hashlib.sha256(identity.kem_pk).hexdigest() == XWING_PK_SHA256


def test_pyca_suite_decapsulates_the_xwing_vector():
    identity = identity_from_xwing_seed(XWING_SEED)
    info = b"cv1/grant-seal\x00vector"
    sealed = seal_with_shared_secret(XWING_SS, XWING_CT, info, b"case key " * 4)
    assert HPKE_SUITE.decrypt(sealed, identity.kem_private, info=info) == b"case key " * 4


def test_another_key_or_secret_does_not_open_it():
    # The check above is not vacuous: a different X-Wing seed, or a different shared secret,
    # makes the same construction fail.
    info = b"cv1/grant-seal\x00vector"
    other = identity_from_xwing_seed(bytes(32))
    sealed = seal_with_shared_secret(XWING_SS, XWING_CT, info, b"k" * 32)
    with pytest.raises(InvalidTag):
        HPKE_SUITE.decrypt(sealed, other.kem_private, info=info)
    wrong_secret = seal_with_shared_secret(bytes(32), XWING_CT, info, b"k" * 32)
    with pytest.raises(InvalidTag):
        HPKE_SUITE.decrypt(wrong_secret, identity_from_xwing_seed(XWING_SEED).kem_private,
                           info=info)
