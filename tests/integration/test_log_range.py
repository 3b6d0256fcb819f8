"""Range requests and format-2 entries at the API, on SQLite and PostgreSQL.

A range is the skeletons of [from, to) under a signed checkpoint, with the frontier at `from`;
a reader checks it with merkle.verify_range and scans it for its case's membership changes.
Case entries carry the body of each format-2 leaf, and the source opening only for the caller's
own events.
"""

from __future__ import annotations

import pytest
from casekit import CaseKit

from vault.db.engine import make_engine, make_sessionmaker
from vault.errors import InvalidRequest
from vault.protocol import logentry, merkle
from vault.protocol.checkpoint import NoteVerifier, open_checkpoint
from vault.protocol.encoding import b64d
from vault.protocol.revocation_scan import scan_checkpointed_range
from vault.services import auditlog


@pytest.fixture
def setting(client, make_user):
    kit = CaseKit(client)
    alice, bob = make_user("alice"), make_user("bob")
    case = kit.create_case(alice)
    assert kit.add(alice, case, bob, "editor").status_code == 201
    file_id, done = kit.upload(alice, case, b"privileged material")
    assert done.status_code == 201, done.text
    assert kit.download(bob, case, file_id).status_code == 200
    return kit, alice, bob, case


def _checkpoint(client, user):
    key = client.get("/v1/log/key").json()
    note = client.get("/v1/log/checkpoint", headers=user.headers).json()["checkpoint"]
    return key, open_checkpoint(note, NoteVerifier.from_vkey(key["vkey"]))


def _range(client, user, **params):
    return client.get("/v1/log/range", params=params, headers=user.headers)


def test_range_verifies_against_a_checkpoint_and_scans(client, setting):
    _, alice, bob, case = setting
    key, cp = _checkpoint(client, bob)
    assert key["first_v2"] == 0  # a fresh database logs format 2 from its first leaf
    for start in (0, 3, cp.size - 1, cp.size):
        reply = _range(client, bob, **{"from": start, "to": cp.size, "size": cp.size,
                                       "frontier": "true"})
        assert reply.status_code == 200, reply.text
        page = reply.json()
        assert page["next"] is None and page["from"] == start
        skeletons = [b64d(s) for s in page["skeletons"]]
        frontier = [b64d(h) for h in page["frontier"]]
        assert len(frontier) == bin(start).count("1")
        hashes = [merkle.leaf_hash(s) for s in skeletons]
        assert merkle.verify_range(frontier, start, hashes, cp.size, cp.root_hash)
        # One changed skeleton, or one left out, and the run is not the signed log.
        if hashes:
            assert not merkle.verify_range(frontier, start, hashes[1:], cp.size, cp.root_hash)
    # A member's scan from first_v2 sees the case's creation and Bob's addition, both verified
    # only if it knows their entry hashes; a skeleton names neither person nor action.
    page = _range(client, bob, **{"from": 0, "to": cp.size, "size": cp.size,
                                  "frontier": "true"}).json()
    result = scan_checkpointed_range(
        case.case_id, start=0, left_frontier=[], known_entry_hashes=set(),
        leaves=[b64d(s) for s in page["skeletons"]], checkpoint_size=cp.size,
        checkpoint_root=cp.root_hash,
    )
    assert len(result.unseen) == 2
    raw = b"".join(b64d(s) for s in page["skeletons"])
    for secret in (alice.user_id, bob.user_id, case.case_id, "case:member", "download"):
        assert secret.encode() not in raw


def test_range_without_frontier_and_paging(client, setting, app_settings):
    _, _, bob, _ = setting
    _, cp = _checkpoint(client, bob)
    page = _range(client, bob, **{"from": 1, "to": 4, "size": cp.size}).json()
    assert page["frontier"] is None and len(page["skeletons"]) == 3
    engine = make_engine(app_settings.resolved_database_url())
    try:
        with make_sessionmaker(engine)() as db:
            first = auditlog.leaf_range(db, start=0, end=5, size=cp.size, with_frontier=True,
                                        limit=2)
            assert (len(first.skeletons), first.next) == (2, 2)
            second = auditlog.leaf_range(db, start=first.next, end=5, size=cp.size,
                                         with_frontier=False, limit=2)
            assert second.next == 4
            last = auditlog.leaf_range(db, start=4, end=5, size=cp.size, with_frontier=False)
            assert last.next is None
            with pytest.raises(InvalidRequest):
                auditlog.leaf_range(db, start=3, end=2, size=cp.size, with_frontier=False)
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"from": 3, "to": 2}, 400),  # backwards
        ({"from": 0, "to": "past"}, 400),  # to > size
        # Malformed parameters are the app's validation problem (422 invalid_request).
        ({"from": -1, "to": 1}, 422),
        ({"from": 0, "to": 1, "size": "unsigned"}, 404),  # no checkpoint of that size
        ({"from": 0, "to": 1, "size": 1 << 62}, 404),
        ({"from": "x", "to": 1}, 422),
        ({"to": 1}, 422),
    ],
)
def test_bad_ranges_are_problems_not_errors(client, setting, params, status):
    _, _, bob, _ = setting
    _, cp = _checkpoint(client, bob)
    params = {"size": cp.size, **params}
    if params["to"] == "past":
        params["to"] = cp.size + 1
    if params["size"] == "unsigned":
        params["size"] = cp.size - 1
    reply = _range(client, bob, **params)
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"].startswith("application/problem+json")


def test_range_needs_a_session(client, setting):
    reply = client.get("/v1/log/range", params={"from": 0, "to": 0, "size": 0})
    assert reply.status_code == 401


def test_case_entries_show_a_fellow_members_address_to_no_one(app, setting):
    from fastapi.testclient import TestClient

    _, alice, bob, case = setting
    addresses = {alice.user_id: "192.0.2.1", bob.user_id: "198.51.100.2"}
    with TestClient(app, client=(addresses[alice.user_id], 40000)) as at_alice, \
            TestClient(app, client=(addresses[bob.user_id], 40001)) as at_bob:
        file_id, done = CaseKit(at_alice).upload(alice, case, b"more material")
        assert done.status_code == 201, done.text
        assert CaseKit(at_bob).download(bob, case, file_id).status_code == 200
        for reader, other, at in ((bob, alice, at_bob), (alice, bob, at_alice)):
            reply = at.get("/v1/log/entries", params={"case_id": case.case_id},
                           headers=reader.headers)
            assert reply.status_code == 200, reply.text
            # Nowhere in the reply, not even committed-to in a form one could test a guess on.
            assert addresses[other.user_id] not in reply.text
            opened = set()
            for row in reply.json()["entries"]:
                skeleton = logentry.parse_skeleton(b64d(row["entry"]))
                body = logentry.check_body(skeleton, b64d(row["body"]))
                opening = row["source_opening"]
                if body.actor_id != reader.user_id:
                    assert opening is None
                    continue
                # The reader's own events open, to the address the server recorded.
                assert opening is not None
                assert logentry.check_source(body, opening["address"], b64d(opening["nonce"]))
                opened.add(opening["address"])
            assert addresses[reader.user_id] in opened
