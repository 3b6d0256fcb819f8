"""argon2-cffi hashing of the client's auth_key and recovery proof (already high-entropy
secrets; the slow hash means a stolen database still costs an attacker per guess)."""

from __future__ import annotations

import os
import secrets
import threading

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# Cheap parameters for the test-only switch: argon2id, 1 pass, 8 MiB.
_TEST_TIME_COST = 1
_TEST_MEMORY_KIB = 8 * 1024

# Argon2 hashes at a time. Each one is all CPU; a burst of logins left unbounded takes every
# core and stalls every other request. One core stays free for them.
MAX_CONCURRENT_HASHES = max(1, (os.cpu_count() or 2) - 1)
# RFC 9106's low-memory profile (argon2id, 3 passes, 64 MiB) on one lane: the profile's 4 lanes
# run as 4 threads, so even one hash at a time took both cores of a small server and the other
# users' requests waited behind a login burst (BENCHMARKS.md section 2). An attacker's cost per
# guess is set by memory and passes, not lanes. Hashes made with other parameters still verify
# and are replaced at the next successful login (needs_rehash).
_TIME_COST = 3
_MEMORY_KIB = 64 * 1024
_LANES = 1


class SecretHasher:
    """Hash and verify byte secrets; equal time whether or not an account exists."""

    def __init__(self, *, insecure_test_parameters: bool = False) -> None:
        if insecure_test_parameters:
            self._ph = PasswordHasher(
                time_cost=_TEST_TIME_COST, memory_cost=_TEST_MEMORY_KIB, parallelism=1
            )
        else:
            self._ph = PasswordHasher(
                time_cost=_TIME_COST, memory_cost=_MEMORY_KIB, parallelism=_LANES
            )
        # Verified against when the account is unknown, so timing does not tell.
        self._dummy_hash = self._ph.hash(secrets.token_bytes(32))
        self._slots = threading.BoundedSemaphore(MAX_CONCURRENT_HASHES)

    def hash(self, secret: bytes) -> str:
        with self._slots:
            return self._ph.hash(secret)

    def verify(self, stored_hash: str | None, secret: bytes) -> bool:
        try:
            with self._slots:
                ok = self._ph.verify(stored_hash or self._dummy_hash, secret)
            return ok and bool(stored_hash)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored_hash: str) -> bool:
        try:
            return self._ph.check_needs_rehash(stored_hash)
        except InvalidHashError:
            return True
