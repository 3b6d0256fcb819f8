"""Cheap Argon2 for the crypto tests (the one switch the client honours), and small factories."""

from __future__ import annotations

import pytest

from client.crypto import Identity
from vault.protocol import membership as m
from vault.protocol import records as r
from vault.protocol.ids import new_id


@pytest.fixture(autouse=True)
def insecure_kdf(monkeypatch):
    monkeypatch.setenv("CASEVAULT_TEST_INSECURE_KDF", "1")


class CaseLog:
    """A case's membership log built by real identities, as the client would build it."""

    def __init__(self, owner: Identity):
        self.case_id = new_id()
        self.entries: list[dict] = []
        self.identities = {owner.user_id: owner.record()}
        self.generation = 0
        self.append(owner, "create", owner, "owner")

    def append(self, author, action, subject, role, key_link=b""):
        if action == "remove":
            self.generation += 1
        rec = subject.record()
        self.identities[subject.user_id] = rec
        prev = (
            r.open_envelope(r.LABEL_MEMBERSHIP, self.entries[-1]).record_hash
            if self.entries
            else r.ZERO_HASH
        )
        body = m.membership_entry_body(
            case_id=self.case_id,
            seq=len(self.entries),
            prev_hash=prev,
            action=action,
            subject=subject.user_id,
            subject_fp=rec.fingerprint_hex,
            role=role,
            author=author.user_id,
            time=1000 + len(self.entries),
            generation=self.generation,
            key_link=key_link,
        )
        self.entries.append(author.sign(r.LABEL_MEMBERSHIP, body))
        return self

    def state(self):
        return m.replay_membership(self.entries, self.identities)


@pytest.fixture(name="CaseLog")
def case_log_class():
    return CaseLog


@pytest.fixture
def alice():
    return Identity.generate(new_id(), "alice", now=1)


@pytest.fixture
def bob():
    return Identity.generate(new_id(), "bob", now=2)


@pytest.fixture
def carol():
    return Identity.generate(new_id(), "carol", now=3)
