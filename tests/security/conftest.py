"""Fixtures of the adversarial suite (helpers live in attack_kit.py, importable by name)."""

from __future__ import annotations

import pytest
from attack_kit import CaseLog, make_identity

from client.crypto.keys import Identity


@pytest.fixture(autouse=True)
def _cheap_kdf(monkeypatch):
    """Cheap Argon2id for the suite; T2/T4 tests that need the real floor delete it again."""
    monkeypatch.setenv("CASEVAULT_TEST_INSECURE_KDF", "1")


@pytest.fixture
def people() -> dict[str, Identity]:
    """Alice (owner), Bob (editor), Vera (viewer), Mallory (outsider)."""
    return {name: make_identity(name) for name in ("alice", "bob", "vera", "mallory")}


@pytest.fixture
def case(people) -> CaseLog:
    log = CaseLog(people["alice"])
    log.add(people["bob"], "editor")
    log.add(people["vera"], "viewer")
    log.know(people["mallory"])
    return log
