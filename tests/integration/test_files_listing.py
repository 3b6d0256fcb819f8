"""The file list: the same JSON as the FileList model, optional paging, audit events counted per
window (T30)."""

from __future__ import annotations

import secrets

import pytest
import sqlalchemy as sa
from casekit import CaseKit

from vault.api.routes.files import FileList


@pytest.fixture
def listed(client, make_user):
    kit = CaseKit(client)
    alice, bob = make_user("alice"), make_user("bob")
    case = kit.create_case(alice)
    assert kit.add(alice, case, bob, "viewer").status_code == 201
    ids = []
    for _ in range(4):
        file_id, done = kit.upload(alice, case, secrets.token_bytes(500))
        assert done.status_code == 201, done.text
        ids.append(file_id)
    _, done = kit.upload(alice, case, secrets.token_bytes(300), file_id=ids[1], version=2)
    assert done.status_code == 201
    tomb = kit.client.post(
        f"/v1/cases/{case.case_id}/files/{ids[2]}/tombstone",
        json={"tombstone": kit.tombstone(alice, case, ids[2])},
        headers=alice.headers,
    )
    assert tomb.status_code == 200, tomb.text
    return kit, case, alice, bob, ids


def _get(kit, case, user, **params):
    return kit.client.get(f"/v1/cases/{case.case_id}/files", params=params, headers=user.headers)


def _list_events(app_settings, case_id, action: str = "file:list:read") -> list[tuple]:
    engine = sa.create_engine(app_settings.database_url)
    try:
        with engine.connect() as conn:
            return [
                tuple(r)
                for r in conn.execute(
                    sa.text(
                        "SELECT actor_id, detail FROM audit_events "
                        "WHERE case_id = :c AND action = :a ORDER BY id"
                    ),
                    {"c": case_id, "a": action},
                )
            ]
    finally:
        engine.dispose()


def test_list_is_exactly_what_the_model_would_serialise(listed):
    kit, case, alice, bob, ids = listed
    r = _get(kit, case, bob)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    body = r.json()
    # No paging asked for: the document the client has always read, and nothing more.
    assert set(body) == {"versions"}
    expected = FileList.model_validate(body).model_dump(mode="json", exclude={"next"})
    assert body == expected
    assert [(v["file_id"], v["version"]) for v in body["versions"]] == sorted(
        [(i, 1) for i in ids] + [(ids[1], 2)]
    )
    deleted = [v for v in body["versions"] if v["file_id"] == ids[2]]
    assert deleted[0]["deleted"] is True and set(deleted[0]["tombstone"]) == {"body", "sig"}
    live = [v for v in body["versions"] if v["file_id"] != ids[2]]
    assert all(v["deleted"] is False and v["tombstone"] is None for v in live)
    # Internal columns (where the blobs are) never reach the client.
    assert all("blob_key" not in v and "blob_sha256" not in v for v in body["versions"])


def test_pages_with_limit_and_after_add_up_to_the_whole_list(listed, app_settings, clock):
    kit, case, alice, bob, ids = listed
    whole = _get(kit, case, bob).json()["versions"]
    pages, after = [], None
    for _ in range(10):
        params = {"limit": 2} if after is None else {"limit": 2, "after": after}
        r = _get(kit, case, bob, **params)
        assert r.status_code == 200, r.text
        pages.append(r.json()["versions"])
        after = r.json()["next"]
        if after is None:
            break
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [v for page in pages for v in page] == whole
    # The first listing of the window is a leaf of its own, with how many versions it showed;
    # the pages after it are counted, and the count is logged once the window has closed.
    events = _list_events(app_settings, case.case_id)
    assert [actor for actor, _ in events] == [bob.user_id]
    assert '"versions":5' in events[0][1].replace(" ", "")
    clock.advance(app_settings.event_aggregation_window)
    assert _get(kit, case, bob, limit=2).status_code == 200
    (window,) = _list_events(app_settings, case.case_id, "file:list:read_window")
    assert window[0] == bob.user_id and '"count":4' in window[1].replace(" ", "")
    assert len(_list_events(app_settings, case.case_id)) == 2  # the new window's first


def test_a_full_last_page_is_followed_by_an_empty_one(listed):
    kit, case, alice, bob, ids = listed
    first = _get(kit, case, bob, limit=5).json()
    assert len(first["versions"]) == 5 and first["next"] is not None
    rest = _get(kit, case, bob, limit=5, after=first["next"]).json()
    assert rest == {"versions": [], "next": None}


@pytest.mark.parametrize(
    "params",
    [
        {"after": "not-a-cursor"},
        {"after": "ab" * 16},
        {"after": "ab" * 16 + ":x"},
        {"after": "../../etc:1"},
        {"limit": 0},
        {"limit": 10_001},
        {"limit": "many"},
    ],
)
def test_bad_paging_parameters_are_client_errors(listed, params):
    kit, case, alice, bob, ids = listed
    r = _get(kit, case, bob, **params)
    assert 400 <= r.status_code < 500, r.text
    assert r.headers["content-type"].startswith("application/problem+json")


def test_a_non_member_cannot_page_either(listed, make_user):
    kit, case, alice, bob, ids = listed
    eve = make_user("eve")
    r = _get(kit, case, eve, limit=1)
    assert r.status_code == 404 and r.json()["code"] == "not_found"
