"""Files: versions, manifests checked against the data, listing, download, signed deletion."""

from __future__ import annotations

import hashlib
import json
import secrets

import nacl.signing
import pytest
import sqlalchemy as sa
from casekit import CaseKit

from vault.protocol.encoding import b64d
from vault.protocol.ids import new_id
from vault.protocol.records import parse_manifest


@pytest.fixture
def setup(client, make_user):
    kit = CaseKit(client)
    alice, bob, vic = make_user("alice"), make_user("bob"), make_user("vic")
    case = kit.create_case(alice)
    assert kit.add(alice, case, bob, "editor").status_code == 201
    assert kit.add(alice, case, vic, "viewer").status_code == 201
    return kit, case, alice, bob, vic


def _actions(app_settings, case_id):
    engine = sa.create_engine(app_settings.database_url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "select action, actor_id, file_id, signed_record from audit_events "
                "where case_id = :c order by id"
            ),
            {"c": case_id},
        ).all()
    engine.dispose()
    return rows


def _listing(kit, case, user):
    r = kit.client.get(f"/v1/cases/{case.case_id}/files", headers=user.headers)
    assert r.status_code == 200, r.text
    return r.json()["versions"]


def test_upload_list_download_and_events(setup, app_settings):
    kit, case, alice, bob, vic = setup
    blob = secrets.token_bytes(300_000)
    file_id, done = kit.upload(bob, case, blob)
    assert done.status_code == 201, done.text
    (entry,) = _listing(kit, case, vic)
    manifest = parse_manifest(entry["manifest"])
    assert (manifest.file_id, manifest.version, manifest.uploader) == (file_id, 1, bob.user_id)
    assert manifest.blob_sha256 == hashlib.sha256(blob).hexdigest()
    assert entry["deleted"] is False and entry["tombstone"] is None
    assert hashlib.sha256(b64d(entry["encrypted_metadata"])).hexdigest() == manifest.meta_hash
    r = kit.download(vic, case, file_id)
    assert r.status_code == 200 and r.content == blob
    assert r.headers["content-length"] == str(len(blob))
    events = _actions(app_settings, case.case_id)
    uploaded = [e for e in events if e.action == "file:version:uploaded"]
    assert len(uploaded) == 1 and uploaded[0].actor_id == bob.user_id
    assert json.loads(uploaded[0].signed_record) == entry["manifest"]
    assert [e.actor_id for e in events if e.action == "file:list:read"] == [vic.user_id]
    downloaded = [e for e in events if e.action == "file:version:downloaded"]
    assert [(e.actor_id, e.file_id) for e in downloaded] == [(vic.user_id, file_id)]


def test_new_upload_of_same_file_is_a_new_version_and_old_stays(setup):
    kit, case, alice, bob, vic = setup
    v1, v2 = b"first version" * 1000, b"second version" * 1000
    file_id, done = kit.upload(alice, case, v1)
    assert done.status_code == 201
    # Version 1 again, or version 3, is not the next version.
    for wrong in (1, 3):
        r = kit.start_upload(bob, case, file_id, wrong, 10)
        assert r.status_code == 409 and r.json()["code"] == "version_conflict"
        assert r.json()["expected"] == 2
    _, done = kit.upload(bob, case, v2, file_id=file_id, version=2)
    assert done.status_code == 201, done.text
    assert [(e["file_id"], e["version"]) for e in _listing(kit, case, alice)] == [
        (file_id, 1),
        (file_id, 2),
    ]
    assert kit.download(alice, case, file_id, 1).content == v1
    assert kit.download(alice, case, file_id, 2).content == v2


def test_two_racing_uploads_of_the_same_version_one_wins(setup):
    kit, case, alice, bob, vic = setup
    file_id = new_id()
    sessions = []
    for user, data in ((alice, b"a" * 100), (bob, b"b" * 100)):
        r = kit.start_upload(user, case, file_id, 1, len(data))
        assert r.status_code == 201
        upload_id = r.json()["upload_id"]
        assert kit.put_part(user, case, upload_id, 0, data).status_code == 200
        sessions.append((user, upload_id, data))
    results = [
        kit.complete(u, case, uid, kit.manifest(u, case, file_id, 1, data))
        for u, uid, data in sessions
    ]
    assert [r.status_code for r in results] == [201, 409]
    assert results[1].json()["code"] == "version_conflict"
    assert kit.download(bob, case, file_id).content == b"a" * 100


@pytest.mark.parametrize(
    "tamper,code",
    [
        ({"blob_sha256": "00" * 32}, "manifest_mismatch"),
        ({"blob_size": 99}, "manifest_mismatch"),
        ({"key": nacl.signing.SigningKey.generate()}, "invalid_record"),
        ({"case_id": new_id()}, "invalid_record"),
        ({"generation": 5}, "invalid_record"),
        ({"membership_seq": 99}, "invalid_record"),
    ],
)
def test_manifest_that_does_not_match_is_refused(setup, tamper, code):
    kit, case, alice, bob, vic = setup
    data = secrets.token_bytes(1000)
    file_id = new_id()
    r = kit.start_upload(bob, case, file_id, 1, len(data))
    upload_id = r.json()["upload_id"]
    assert kit.put_part(bob, case, upload_id, 0, data).status_code == 200
    r = kit.complete(bob, case, upload_id, kit.manifest(bob, case, file_id, 1, data, **tamper))
    assert r.status_code == 400 and r.json()["code"] == code, r.text
    assert _listing(kit, case, alice) == []
    # The session survives a refused completion: a correct manifest still completes it.
    r = kit.complete(bob, case, upload_id, kit.manifest(bob, case, file_id, 1, data))
    assert r.status_code == 201, r.text


def test_metadata_and_wrapped_key_must_match_the_manifest(setup):
    kit, case, alice, bob, vic = setup
    data = b"z" * 500
    file_id = new_id()
    upload_id = kit.start_upload(bob, case, file_id, 1, len(data)).json()["upload_id"]
    kit.put_part(bob, case, upload_id, 0, data)
    good = kit.manifest(bob, case, file_id, 1, data)
    for field in ("encrypted_metadata", "wrapped_key"):
        swapped = {**good, field: kit.manifest(bob, case, file_id, 1, data)[field]}
        r = kit.complete(bob, case, upload_id, swapped)
        assert r.status_code == 400 and r.json()["code"] == "manifest_mismatch"


def test_manifest_signed_by_another_member_is_refused(setup):
    kit, case, alice, bob, vic = setup
    data = b"q" * 100
    file_id = new_id()
    upload_id = kit.start_upload(bob, case, file_id, 1, len(data)).json()["upload_id"]
    kit.put_part(bob, case, upload_id, 0, data)
    r = kit.complete(bob, case, upload_id, kit.manifest(alice, case, file_id, 1, data))
    assert r.status_code == 400 and r.json()["code"] == "invalid_record"


def test_after_a_removal_the_old_generation_is_refused(setup, make_user):
    kit, case, alice, bob, vic = setup
    data = b"n" * 100
    file_id = new_id()
    upload_id = kit.start_upload(bob, case, file_id, 1, len(data)).json()["upload_id"]
    kit.put_part(bob, case, upload_id, 0, data)
    old = kit.manifest(bob, case, file_id, 1, data)
    assert kit.remove(alice, case, vic).status_code == 201
    # Signed before the removal: no longer at the membership head.
    r = kit.complete(bob, case, upload_id, old)
    assert r.status_code == 409 and r.json()["code"] == "membership_stale"
    # At the head but under the old generation, which the removed member holds.
    r = kit.complete(bob, case, upload_id, kit.manifest(bob, case, file_id, 1, data, generation=0))
    assert r.status_code == 400 and r.json()["code"] == "invalid_record"
    r = kit.complete(bob, case, upload_id, kit.manifest(bob, case, file_id, 1, data))
    assert r.status_code == 201, r.text


def test_removed_member_cannot_complete_or_download(setup):
    kit, case, alice, bob, vic = setup
    file_id, done = kit.upload(alice, case, b"evidence" * 100)
    data = b"late" * 10
    upload_id = kit.start_upload(bob, case, new_id(), 1, len(data)).json()["upload_id"]
    kit.put_part(bob, case, upload_id, 0, data)
    assert kit.remove(alice, case, bob).status_code == 201
    assert kit.download(bob, case, file_id).status_code == 404
    r = kit.complete(
        bob, case, upload_id, {"manifest": {}, "encrypted_metadata": "AA", "wrapped_key": "AA"}
    )
    assert r.status_code == 404


def test_viewer_cannot_upload_or_delete(setup):
    kit, case, alice, bob, vic = setup
    file_id, _ = kit.upload(alice, case, b"x" * 10)
    r = kit.start_upload(vic, case, new_id(), 1, 10)
    assert r.status_code == 403 and r.json()["code"] == "insufficient_role"
    r = kit.client.post(
        f"/v1/cases/{case.case_id}/files/{file_id}/tombstone",
        json={"tombstone": kit.tombstone(vic, case, file_id)},
        headers=vic.headers,
    )
    assert r.status_code == 403
    assert _listing(kit, case, vic)[0]["deleted"] is False


def test_signed_tombstone_marks_every_version_deleted(setup, app_settings):
    kit, case, alice, bob, vic = setup
    file_id, _ = kit.upload(alice, case, b"v1")
    kit.upload(alice, case, b"v2", file_id=file_id, version=2)
    url = f"/v1/cases/{case.case_id}/files/{file_id}/tombstone"
    # A tombstone signed by someone else, or naming another file, is refused.
    forged = kit.tombstone(bob, case, file_id, key=nacl.signing.SigningKey.generate())
    other = kit.tombstone(bob, case, new_id())
    for bad in (forged, other, kit.tombstone(alice, case, file_id)):
        r = kit.client.post(url, json={"tombstone": bad}, headers=bob.headers)
        assert r.status_code == 400 and r.json()["code"] == "invalid_record"
    tomb = kit.tombstone(bob, case, file_id)
    r = kit.client.post(url, json={"tombstone": tomb}, headers=bob.headers)
    assert r.status_code == 200, r.text
    listing = _listing(kit, case, vic)
    assert [e["deleted"] for e in listing] == [True, True]
    assert all(e["tombstone"] == tomb for e in listing)
    r = kit.download(alice, case, file_id, 2)
    assert r.status_code == 404 and r.json()["code"] == "file_deleted"
    again = kit.client.post(url, json={"tombstone": tomb}, headers=bob.headers)
    assert again.status_code == 404 and again.json()["code"] == "file_deleted"
    r = kit.start_upload(alice, case, file_id, 3, 10)
    assert r.status_code == 404 and r.json()["code"] == "file_deleted"
    deleted = [e for e in _actions(app_settings, case.case_id) if e.action == "file:file:deleted"]
    assert len(deleted) == 1 and json.loads(deleted[0].signed_record) == tomb


def test_unknown_file_or_version_is_not_found(setup):
    kit, case, alice, bob, vic = setup
    file_id, _ = kit.upload(alice, case, b"abc")
    assert kit.download(alice, case, file_id, 2).status_code == 404
    assert kit.download(alice, case, new_id(), 1).status_code == 404
    assert kit.download(alice, case, "../../x", 1).status_code == 404
