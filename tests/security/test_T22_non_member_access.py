"""T22: a logged-in user who is not a member probes or grabs another lawyer's case: reads its
membership, grants, files, blobs, uploads, audit entries, or writes to it.

Every case route, taken from `app.routes` so a new route cannot escape, must answer the
outsider exactly what it answers for a case that does not exist, and never a 2xx.
"""

from __future__ import annotations

import re

import httpx
from attack_kit import bearer, walk_routes

from vault.protocol.ids import new_id


def _fill(template: str, case_id: str, file_id: str, upload_id: str) -> str:
    values = {
        "case_id": case_id,
        "file_id": file_id,
        "upload_id": upload_id,
        "version": "1",
        "part_number": "0",
    }
    return re.sub(r"\{(\w+)(:\w+)?\}", lambda m: values.get(m.group(1), new_id()), template)


def _request(http, method, url, headers):
    kwargs = {"headers": headers}
    if method in ("POST", "PUT", "PATCH"):
        kwargs["json"] = {}
    return http.request(method, url, **kwargs)


def test_T22_every_case_route_hides_case_from_non_member(app, live_server, shared_world):
    alice, bob, case_id, file_id, _ = shared_world
    with httpx.Client(base_url=live_server, timeout=30) as http:
        started = http.post(
            f"/v1/cases/{case_id}/uploads",
            json={"file_id": new_id(), "version": 1, "total_size": 10, "part_size": 10},
            headers=bearer(alice),
        )
        assert started.status_code == 201, started.text
        upload_id = started.json()["upload_id"]
        case_routes = [(m, p) for m, p in walk_routes(app.routes) if "{case_id}" in p]
        assert len(case_routes) >= 8, case_routes
        for method, template in case_routes:
            real = _fill(template, case_id, file_id, upload_id)
            missing = _fill(template, new_id(), file_id, upload_id)
            outsider = _request(http, method, real, bearer(bob))
            nowhere = _request(http, method, missing, bearer(bob))
            where = f"{method} {template}"
            assert not 200 <= outsider.status_code < 300, where
            assert outsider.status_code == nowhere.status_code, where
            assert outsider.json().get("code") == nowhere.json().get("code"), where
            anonymous = _request(http, method, real, {})
            assert anonymous.status_code == 401, where
        # The audit entries of the case, asked for by query parameter.
        outsider = http.get("/v1/log/entries", params={"case_id": case_id}, headers=bearer(bob))
        nowhere = http.get("/v1/log/entries", params={"case_id": new_id()}, headers=bearer(bob))
        assert outsider.status_code == nowhere.status_code == 404
        # The upload Alice started is still hers alone, and the file is untouched.
        status = http.get(f"/v1/cases/{case_id}/uploads/{upload_id}", headers=bearer(alice))
        assert status.status_code == 200
    assert [f["file_id"] for f in alice.ls(case_id)] == [file_id]


def test_T22_case_list_shows_only_own_cases(live_server, shared_world):
    alice, bob, case_id, _, bob_case = shared_world
    with httpx.Client(base_url=live_server, timeout=30) as http:
        listed = http.get("/v1/cases", headers=bearer(bob)).json()
    text = repr(listed)
    assert case_id not in text and bob_case in text
