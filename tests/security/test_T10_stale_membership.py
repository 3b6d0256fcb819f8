"""T10: a manifest or tombstone signed at a membership position that is no longer the head.

SPEC 4.4 says the server MUST accept a manifest only at the head of the membership log; it used
to accept any position the uploader held rights at, so a record signed against an outdated view
of the case (an editor's stale client, or a removed editor backdating with the server's help)
became a new version. The server now refuses it with 409 `membership_stale`, in the very
transaction that publishes, and an honest client that loses a race with another owner's change
reloads the case and signs again once (or, when the key generation changed, stops with a clear
message and encrypts afresh on the next `put`).
"""

from __future__ import annotations

import hashlib
import secrets
import time

import httpx
import pytest
from attack_kit import bearer
from starlette.concurrency import run_in_threadpool

from client.errors import MembershipStale
from vault.protocol.encoding import b64d, b64e, parse_canonical
from vault.protocol.ids import new_id
from vault.protocol.records import LABEL_MANIFEST, LABEL_TOMBSTONE, manifest_body, tombstone_body


class OwnerActsFirst:
    """The real app, wrapped: before the next request to a path ending in `suffix`, another
    owner's action runs to completion (on a worker thread, so the server can serve it)."""

    def __init__(self, app) -> None:
        self.app = app
        self.pending: tuple[str, object] | None = None

    def before_next(self, suffix: str, action) -> None:
        self.pending = (suffix, action)

    async def __call__(self, scope, receive, send) -> None:
        if (
            self.pending is not None
            and scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"].endswith(self.pending[0])
        ):
            action = self.pending[1]
            self.pending = None
            await run_in_threadpool(action)
        await self.app(scope, receive, send)


@pytest.fixture
def app(app_settings, clock):
    from vault.api.app import create_app

    return OwnerActsFirst(create_app(app_settings, clock=clock))


def _problem(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text[:300]
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == code


def _upload(http: httpx.Client, case_id: str, blob: bytes) -> tuple[str, str]:
    file_id = new_id()
    start = {"file_id": file_id, "version": 1, "total_size": len(blob), "part_size": len(blob)}
    created = http.post(f"/v1/cases/{case_id}/uploads", json=start)
    assert created.status_code == 201, created.text
    upload_id = created.json()["upload_id"]
    part = http.put(
        f"/v1/cases/{case_id}/uploads/{upload_id}/parts/0",
        content=blob,
        headers={"X-Part-SHA256": hashlib.sha256(blob).hexdigest()},
    )
    assert part.status_code == 200, part.text
    return file_id, upload_id


def _completion(identity, case_id, file_id, blob, *, seq, generation=0) -> dict:
    meta, wrapped = secrets.token_bytes(64), secrets.token_bytes(72)
    body = manifest_body(
        case_id=case_id, file_id=file_id, version=1, generation=generation,
        membership_seq=seq, blob_size=len(blob), blob_sha256=hashlib.sha256(blob).hexdigest(),
        meta_hash=hashlib.sha256(meta).hexdigest(),
        wrapped_key_hash=hashlib.sha256(wrapped).hexdigest(),
        uploader=identity.user_id, time=int(time.time()),
    )
    return {
        "manifest": identity.sign(LABEL_MANIFEST, body),
        "encrypted_metadata": b64e(meta),
        "wrapped_key": b64e(wrapped),
    }


def test_T10_server_refuses_manifest_and_tombstone_signed_at_an_old_membership_seq(
    lawyer, live_server
):
    alice, _bob = lawyer("alice"), lawyer("bob")
    case_id = alice.create_case("R v Okafor")
    alice.share(case_id, "bob", role="viewer")  # membership head: seq 1, generation 0
    me = alice.identity()
    blob = b"opaque ciphertext"
    with httpx.Client(base_url=live_server, timeout=30, headers=bearer(alice)) as http:
        file_id, upload_id = _upload(http, case_id, blob)
        complete = f"/v1/cases/{case_id}/uploads/{upload_id}/complete"
        # Alice was an owner at seq 0, with generation 0: valid as history, not as new.
        stale = _completion(me, case_id, file_id, blob, seq=0)
        _problem(http.post(complete, json=stale), 409, "membership_stale")
        assert http.get(f"/v1/cases/{case_id}/files").json()["versions"] == []
        # The refused upload is kept: the same data signed at the head completes.
        fresh = _completion(me, case_id, file_id, blob, seq=1)
        assert http.post(complete, json=fresh).status_code == 201

        tombstone = f"/v1/cases/{case_id}/files/{file_id}/tombstone"
        for seq, status in ((0, 409), (1, 200)):
            body = tombstone_body(case_id=case_id, file_id=file_id, membership_seq=seq,
                                  deleter=me.user_id, time=int(time.time()))
            answer = http.post(tombstone, json={"tombstone": me.sign(LABEL_TOMBSTONE, body)})
            if status == 409:
                _problem(answer, 409, "membership_stale")
                listed = http.get(f"/v1/cases/{case_id}/files").json()["versions"]
                assert [v["deleted"] for v in listed] == [False]
            else:
                assert answer.status_code == 200, answer.text


def _seq_of_latest_manifest(server: str, vault, case_id: str) -> int:
    with httpx.Client(base_url=server, timeout=30, headers=bearer(vault)) as http:
        versions = http.get(f"/v1/cases/{case_id}/files").json()["versions"]
    return parse_canonical(b64d(versions[-1]["manifest"]["body"]))["membership_seq"]


def test_T10_client_signs_again_after_another_owner_changes_membership(
    lawyer, live_server, app, tmp_path
):
    alice, bob, _carol = lawyer("alice"), lawyer("bob"), lawyer("carol")
    case_id = alice.create_case("R v Adeyemi")
    alice.share(case_id, "bob", role="owner")  # seq 1
    doc = tmp_path / "statement.txt"
    doc.write_bytes(b"witness statement")
    # Between Bob's load of the case and his completion, Alice adds Carol (seq 2, same key).
    app.before_next("/complete", lambda: alice.share(case_id, "carol", role="viewer"))
    (put,) = bob.put(case_id, [doc])
    assert app.pending is None  # the race happened
    assert [f["file_id"] for f in alice.ls(case_id)] == [put["file_id"]]
    assert _seq_of_latest_manifest(live_server, alice, case_id) == 2

    # The same race before a deletion: Alice makes Carol an editor (seq 3), Bob signs again.
    app.before_next("/tombstone", lambda: alice.set_role(case_id, "carol", "editor"))
    bob.rm(case_id, put["file_id"])
    assert app.pending is None
    assert alice.ls(case_id) == []  # deleted files are not listed


def test_T10_client_stops_when_the_race_brought_a_new_key_generation(
    lawyer, live_server, app, tmp_path
):
    alice, bob, _carol = lawyer("alice"), lawyer("bob"), lawyer("carol")
    case_id = alice.create_case("R v Mensah")
    alice.share(case_id, "bob", role="owner")
    alice.share(case_id, "carol", role="viewer")
    doc = tmp_path / "note.txt"
    doc.write_bytes(b"attendance note")
    # Alice removes Carol while Bob completes: Bob's file key is wrapped under the key Carol
    # holds, so it must not be published; the client says so and stores nothing.
    app.before_next("/complete", lambda: alice.revoke(case_id, "carol"))
    with pytest.raises(MembershipStale, match="membership changed"):
        bob.put(case_id, [doc])
    assert alice.ls(case_id) == []
    # Running the command again encrypts under the new generation and succeeds.
    (put,) = bob.put(case_id, [doc])
    assert [f["file_id"] for f in alice.ls(case_id)] == [put["file_id"]]
