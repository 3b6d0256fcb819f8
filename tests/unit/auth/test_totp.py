"""TOTP computation: RFC 6238 steps, +-1 window, recovery codes."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlparse

import pyotp

from vault.auth import totp

NOW = datetime(2026, 1, 2, 3, 4, 15, tzinfo=UTC)


def _code(secret: bytes, when: datetime) -> str:
    return pyotp.TOTP(base64.b32encode(secret).decode()).at(when)


def test_secret_is_160_bits_and_uri_carries_it():
    secret = totp.new_secret()
    assert len(secret) == 20
    uri = totp.provisioning_uri(secret, "alice")
    query = parse_qs(urlparse(uri).query)
    assert uri.startswith("otpauth://totp/CaseVault:alice")
    assert base64.b32decode(query["secret"][0]) == secret
    assert query["issuer"] == ["CaseVault"]


def test_rfc6238_reference_vector():
    # RFC 6238 appendix B, SHA-1 secret "12345678901234567890", T=59 -> 94287082 (8 digits);
    # the 6-digit code is its last six digits.
    secret = b"12345678901234567890"
    assert totp.code_at_step(secret, 59 // 30) == "287082"


def test_accepts_the_current_and_adjacent_steps_only():
    secret = totp.new_secret()
    step = totp.time_step(NOW)
    for offset in (-1, 0, 1):
        code = _code(secret, NOW + timedelta(seconds=30 * offset))
        assert totp.matching_step(secret, code, NOW) == step + offset
    for offset in (-3, -2, 2, 3):
        code = _code(secret, NOW + timedelta(seconds=30 * offset))
        if code not in {_code(secret, NOW + timedelta(seconds=30 * o)) for o in (-1, 0, 1)}:
            assert totp.matching_step(secret, code, NOW) is None


def test_rejects_malformed_codes():
    secret = totp.new_secret()
    for code in ("", "12345", "1234567", "12a456", "١٢٣٤٥٦", " 123456"):
        assert totp.matching_step(secret, code, NOW) is None


def test_recovery_codes_are_unique_printable_and_normalised():
    codes = totp.new_recovery_codes()
    assert len(codes) == totp.RECOVERY_CODE_COUNT == len(set(codes))
    for code in codes:
        assert len(code.replace("-", "")) == 16
        assert totp.hash_recovery_code(code) == totp.hash_recovery_code(code.lower())
        assert totp.hash_recovery_code(code) == totp.hash_recovery_code(code.replace("-", " "))
    assert totp.hash_recovery_code(codes[0]) != totp.hash_recovery_code(codes[1])
