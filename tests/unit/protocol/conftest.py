"""Real signed membership logs and real format-2 leaves, built the way server and client do."""

from __future__ import annotations

import os
from typing import Any

import nacl.signing
import pytest

from vault.protocol import logentry, membership
from vault.protocol import records as r
from vault.protocol.encoding import canonical_json
from vault.protocol.events import Action
from vault.protocol.ids import new_id


class Person:
    def __init__(self, name: str) -> None:
        self.sk = nacl.signing.SigningKey.generate()
        body = r.identity_body(
            user_id=new_id(),
            username=name,
            sign_pk=bytes(self.sk.verify_key),
            kem_pk=os.urandom(r.KEM_PK_BYTES),
            created_at=1,
        )
        self.record = r.verify_identity_record(r.sign_record(r.LABEL_IDENTITY, body, self.sk))
        self.id = self.record.user_id


class Case:
    """A case's signed membership log; each append returns the signed entry."""

    def __init__(self, owner: Person) -> None:
        self.id = new_id()
        self.entries: list[dict[str, str]] = []
        self.identities = {owner.id: owner.record}
        self.generation = 0
        self.append(owner, "create", owner, "owner")

    def append(
        self, author: Person, action: str, subject: Person, role: str, reason: str | None = None
    ) -> dict[str, str]:
        if action == "remove":
            self.generation += 1
        self.identities[subject.id] = subject.record
        body = membership.membership_entry_body(
            case_id=self.id,
            seq=len(self.entries),
            prev_hash=self.hashes()[-1] if self.entries else r.ZERO_HASH,
            action=action,
            subject=subject.id,
            subject_fp=subject.record.fingerprint_hex,
            role=role,
            author=author.id,
            time=100 + len(self.entries),
            generation=self.generation,
            key_link=os.urandom(72) if action == "remove" else b"",
            reason=reason,
        )
        signed = r.sign_record(r.LABEL_MEMBERSHIP, body, author.sk)
        self.entries.append(signed)
        return signed

    def hashes(self) -> list[str]:
        """Entry hashes of the log, each checked by a full replay (what a client knows)."""
        state = membership.replay_membership(self.entries, self.identities)
        return [e.entry_hash for e in state.entries]


_ENTRY_EVENT = {"create": Action.CASE_CREATED, "add": Action.MEMBER_ADDED,
                "remove": Action.MEMBER_REMOVED, "role": Action.MEMBER_ROLE_CHANGED,
                "hold": Action.CASE_HOLD_PLACED, "release": Action.CASE_HOLD_RELEASED}


class Leaves:
    """The audit log as a list of leaves; bodies kept beside them as the server keeps them."""

    def __init__(self) -> None:
        self.leaves: list[bytes] = []
        self.bodies: list[bytes] = []

    def event(self, **fields: Any) -> int:
        fields.setdefault("result", "success")
        for key in ("actor_id", "case_id", "file_id", "source", "signed_record"):
            fields.setdefault(key, None)
        fields.setdefault("detail", {})
        skeleton, body = logentry.build_leaf(
            event_id=len(self.leaves) + 1,
            time=f"2026-12-01T10:00:{len(self.leaves) % 60:02d}.000000Z",
            **fields,
        )
        self.leaves.append(skeleton)
        self.bodies.append(body)
        return len(self.leaves) - 1

    def membership(self, case: Case, signed: dict[str, str], actor: Person) -> int:
        action = r.open_envelope(r.LABEL_MEMBERSHIP, signed).body["action"]
        return self.event(action=_ENTRY_EVENT[action], actor_id=actor.id, case_id=case.id,
                          source=("192.0.2.7", os.urandom(16)), signed_record=signed)

    def download(self, case: Case, actor: Person) -> int:
        return self.event(action=Action.FILE_DOWNLOADED, actor_id=actor.id, case_id=case.id,
                          file_id=new_id(), source=("198.51.100.4", os.urandom(16)),
                          detail={"version": 1})

    def login(self, actor: Person) -> int:
        return self.event(action=Action.LOGIN_OK, actor_id=actor.id,
                          source=("2001:db8::1", os.urandom(16)))

    def v1(self, case: Case) -> int:
        """A leaf as format 1 wrote it (the history before format 2)."""
        self.leaves.append(canonical_json({
            "v": logentry.LEAF_VERSION_1, "event_id": len(self.leaves) + 1,
            "time": "2026-11-30T10:00:00.000000Z", "action": str(Action.FILE_LISTED),
            "result": "success", "actor_id": new_id(), "case_id": case.id, "file_id": None,
            "source": "192.0.2.7", "detail": {}, "signed_record": None,
        }))
        self.bodies.append(b"")
        return len(self.leaves) - 1


@pytest.fixture
def lawyers() -> tuple[Person, Person, Person]:
    return Person("alice"), Person("bob"), Person("carol")


@pytest.fixture
def audit() -> Leaves:
    return Leaves()


@pytest.fixture
def make_case():
    return Case
