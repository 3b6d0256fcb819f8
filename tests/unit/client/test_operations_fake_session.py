"""Operations run over a Session alone: no Vault, no server. The API is an in-memory stand-in
that stores what the client sends and answers with it, as an honest server would, unless a test
makes it lie; every record in it is built with the real client crypto, and the operations verify
them exactly as they verify a real server's replies. Its audit log holds real format-2 leaves
(membership events tagged with their case), so the revocation scan reads it as a server's."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from client import crypto
from client.cases import CaseOps
from client.errors import NotAMember, NotFound
from client.files.listing import CaseFiles
from client.keystore import Keystore
from client.session import Session
from vault.protocol import merkle
from vault.protocol.checkpoint import Checkpoint
from vault.protocol.encoding import b64e
from vault.protocol.events import MEMBERSHIP_EVENTS, Action
from vault.protocol.ids import new_id
from vault.protocol.logentry import build_leaf
from vault.protocol.records import (
    LABEL_MANIFEST,
    LABEL_MEMBERSHIP,
    manifest_body,
    open_envelope,
    parse_grant,
)

NOW = 1_760_000_000


class FakeApi:
    """The endpoints the case and file operations call, over dictionaries."""

    def __init__(self) -> None:
        self.cases: dict[str, dict[str, Any]] = {}
        self.users: dict[str, dict[str, str]] = {}  # username -> signed identity record
        self.user_ids: dict[str, str] = {}  # user id -> username
        self.versions: dict[str, list[dict[str, Any]]] = {}
        self.caller = ""  # the user id the requests come from (the first session's)
        self.leaves: list[bytes] = []  # the audit log, format 2 from its first leaf
        self.range_requests: list[tuple[int, int, int]] = []

    def _logged(self, entry: dict[str, str] | None = None) -> dict[str, int]:
        """Append one audit leaf; a membership entry's leaf carries its case tag and hash."""
        action, case_id, actor = Action.FILE_LISTED, None, None
        if entry is not None:
            body = open_envelope(LABEL_MEMBERSHIP, entry).body
            action = MEMBERSHIP_EVENTS.get(body["action"], Action.CASE_CREATED)
            case_id, actor = body["case_id"], body["author"]
        skeleton, _ = build_leaf(
            event_id=len(self.leaves) + 1, time="2025-10-09T08:53:20.000000Z", action=action,
            result="success", actor_id=actor, case_id=case_id, file_id=None, source=None,
            detail={}, signed_record=entry)
        self.leaves.append(skeleton)
        return {"log_index": len(self.leaves) - 1}

    def checkpoint(self) -> Checkpoint:
        return Checkpoint("fake.example/log", len(self.leaves),
                          merkle.root_of_entries(self.leaves))

    def log_key(self) -> dict[str, Any]:
        return {"first_v2": 0}

    def log_range(self, start: int, end: int, size: int, *, frontier: bool) -> dict[str, Any]:
        self.range_requests.append((start, end, size))
        hashes = [merkle.leaf_hash(leaf) for leaf in self.leaves[:size]]
        left = merkle.extend_frontier([], 0, hashes[:start]) if frontier else None
        return {"from": start, "size": size, "next": None,
                "skeletons": [b64e(leaf) for leaf in self.leaves[start:end]],
                "frontier": None if left is None else [b64e(h) for h in left]}

    def _usernames(self, case_id: str) -> dict[str, str]:
        # As the server does: the names of the users the case's records are about.
        members = {parse_grant(g).member for g in self.cases[case_id]["grants"]}
        return {uid: name for uid, name in self.user_ids.items() if uid in members}

    def create_case(self, body: dict[str, Any]) -> dict[str, int]:
        self.cases[body["case_id"]] = {"entries": [body["entry"]], "grants": [body["grant"]],
                                       "info": body["encrypted_info"]}
        return self._logged(body["entry"])

    def list_cases(self) -> dict[str, Any]:
        return {"cases": [{"case_id": cid, "encrypted_info": c["info"], "membership_seq": None,
                           "membership_head": None} for cid, c in self.cases.items()]}

    def membership(self, case_id: str) -> dict[str, Any]:
        if case_id not in self.cases:
            raise NotFound(code="not_found", status=404)
        return {"entries": list(self.cases[case_id]["entries"]),
                "usernames": self._usernames(case_id)}

    def grants(self, case_id: str) -> dict[str, Any]:
        # The caller's own grants only, as the server sends them.
        return {"grants": [g for g in self.cases[case_id]["grants"]
                           if parse_grant(g).member == self.caller]}

    def append_membership(self, case_id: str, body: dict[str, Any]) -> dict[str, int]:
        self.cases[case_id]["entries"].append(body["entry"])
        self.cases[case_id]["grants"].extend(body["grants"])
        return self._logged(body["entry"])

    def user_identity(self, username: str) -> dict[str, Any]:
        if username not in self.users:
            raise NotFound(code="not_found", status=404)
        return {"identity": self.users[username]}

    def files_page(self, case_id: str, *, limit: int, after: Any) -> dict[str, Any]:
        return {"versions": list(self.versions.get(case_id, [])), "next": None}


class RecordingLog:
    """The log verifier's part the operations use; it keeps what they asked it to prove."""

    def __init__(self, api: FakeApi) -> None:
        self.api = api
        self.receipts: list[tuple[Any, dict[str, Any], Any]] = []

    def fetch_receipt(self, index: Any, *, expect: dict[str, Any],
                      expect_detail: dict[str, Any] | None = None) -> None:
        self.receipts.append((index, dict(expect), expect_detail))

    def refresh(self) -> Checkpoint:
        return self.api.checkpoint()

    def pinned(self) -> tuple[Checkpoint, str]:
        return self.api.checkpoint(), "checkpoint of the sharer"

    def check_sharer_checkpoint(self, case_id: str, *, member_id: str, added_seq: int) -> str:
        self.receipts.append((None, {"sharer_checkpoint_of": case_id}, added_seq))
        return "consistent"


def _session(tmp_path, api: FakeApi, name: str, log: RecordingLog) -> Session:
    identity = crypto.Identity.generate(new_id(), name)
    api.users[name] = identity.public_record()
    api.user_ids[identity.user_id] = name
    api.caller = api.caller or identity.user_id
    return Session(Keystore(str(tmp_path / name)), api=api, identity=identity,  # type: ignore[arg-type]
                   log=lambda: log, clock=lambda: NOW)


@pytest.fixture
def world(tmp_path):
    api = FakeApi()
    log = RecordingLog(api)
    return api, log, _session(tmp_path, api, "alice", log)


def test_create_list_and_members_over_a_fake_session(world):
    api, log, alice = world
    cases = CaseOps(alice)
    case_id = cases.create("R v Smith")
    assert cases.list() == [{"case_id": case_id, "name": "R v Smith", "role": "owner",
                             "hold": None}]
    assert cases.members(case_id) == [{"username": "alice", "role": "owner",
                                       "trust": "verified"}]
    # The creation's own log entry was sent for proof, naming the one shared action.
    (index, expect, _), = log.receipts
    assert index == 0 and expect["action"] == Action.CASE_CREATED
    assert expect["actor_id"] == alice.identity().user_id and expect["case_id"] == case_id


def test_share_then_members_and_the_receipt_names_the_new_member(world, tmp_path):
    api, log, alice = world
    bob = _session(tmp_path, api, "bob", RecordingLog(api))
    cases = CaseOps(alice)
    case_id = cases.create("R v Jones")
    shared = cases.share(case_id, "bob", role="viewer", fingerprint=None)
    assert shared["first_seen"] is True and shared["verified"] is False
    assert shared["trust"] == "unverified"
    assert cases.members(case_id) == [{"username": "alice", "role": "owner", "trust": "verified"},
                                      {"username": "bob", "role": "viewer",
                                       "trust": "unverified"}]
    _, expect, detail = log.receipts[-1]
    assert expect["action"] == Action.MEMBER_ADDED
    assert detail == {"subject": bob.identity().user_id,
                      "sharer_checkpoint": "checkpoint of the sharer"}


def test_a_server_that_swaps_case_names_is_caught(world):
    """The listing pairs case A with case B's encrypted name: the name is bound to its case."""
    api, _, alice = world
    cases = CaseOps(alice)
    a, b = cases.create("R v Smith"), cases.create("R v Jones")
    api.cases[a]["info"], api.cases[b]["info"] = api.cases[b]["info"], api.cases[a]["info"]
    with pytest.raises(crypto.IntegrityError, match="case"):
        cases.list()


def test_a_case_the_server_no_longer_shows_is_not_a_membership(world):
    _, _, alice = world
    with pytest.raises(NotAMember):
        CaseOps(alice).load(new_id())


def _version(alice: Session, case_id: str, name: str, data: bytes) -> dict[str, Any]:
    """One file version as an honest client uploads it (metadata, wrapped key, manifest)."""
    ctx = CaseOps(alice).load(case_id)
    file_id, file_key = new_id(), crypto.new_file_key()
    meta = crypto.FileMetadata(name=name, size=len(data),
                               sha256=hashlib.sha256(data).hexdigest(), client_time=NOW)
    enc_meta = crypto.encrypt_file_metadata(meta, file_key=file_key, case_id=case_id,
                                            file_id=file_id, version=1)
    wrapped = crypto.wrap_file_key(file_key, case_key=ctx.key, case_id=case_id,
                                   file_id=file_id, version=1, generation=ctx.generation)
    identity = alice.identity()
    body = manifest_body(
        case_id=case_id, file_id=file_id, version=1, generation=ctx.generation,
        membership_seq=ctx.state.head.seq, blob_size=4096, blob_sha256="0" * 64,
        meta_hash=hashlib.sha256(enc_meta).hexdigest(),
        wrapped_key_hash=hashlib.sha256(wrapped).hexdigest(),
        uploader=identity.user_id, time=NOW)
    return {"file_id": file_id, "version": 1, "manifest": identity.sign(LABEL_MANIFEST, body),
            "encrypted_metadata": b64e(enc_meta), "wrapped_key": b64e(wrapped),
            "deleted": False}


def test_file_listing_over_a_fake_session(world):
    api, _, alice = world
    case_id = CaseOps(alice).create("R v Smith")
    first = _version(alice, case_id, "statement.pdf", b"statement")
    second = _version(alice, case_id, "exhibit-1.jpg", b"exhibit")
    api.versions[case_id] = sorted([first, second], key=lambda v: v["file_id"])
    rows = CaseFiles(alice).ls(case_id)
    assert [(r["name"], r["size"], r["uploaded_by"]) for r in rows] == [
        ("exhibit-1.jpg", 7, "alice"), ("statement.pdf", 9, "alice")]
    assert rows[0]["uploaded_at"] == "2025-10-09T08:53:20Z"


def test_file_listing_refuses_a_file_the_server_hides_after_showing_it(world):
    api, _, alice = world
    case_id = CaseOps(alice).create("R v Smith")
    api.versions[case_id] = [_version(alice, case_id, "statement.pdf", b"statement")]
    CaseFiles(alice).ls(case_id)
    api.versions[case_id] = []  # dropped without a signed deletion
    with pytest.raises(crypto.IntegrityError, match="hiding a file"):
        CaseFiles(alice).ls(case_id)


def test_file_listing_refuses_metadata_moved_from_another_file(world):
    api, _, alice = world
    case_id = CaseOps(alice).create("R v Smith")
    one = _version(alice, case_id, "statement.pdf", b"statement")
    two = _version(alice, case_id, "exhibit-1.jpg", b"exhibit")
    one["encrypted_metadata"] = two["encrypted_metadata"]
    api.versions[case_id] = [one]
    with pytest.raises(crypto.IntegrityError):
        CaseFiles(alice).ls(case_id)
