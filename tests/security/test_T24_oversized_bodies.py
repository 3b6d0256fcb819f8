"""T24: an attacker (logged in or not) sends bodies far larger than any real request, to
exhaust the server's memory or disk. Limits are checked while streaming and answered with a
clear 413 (507 for the quota), never a 500, and nothing is stored."""

from __future__ import annotations

import hashlib

import httpx
from attack_kit import bearer

from vault.protocol.ids import new_id

MIB = 1024 * 1024


def _problem(response, status, code=None):
    assert response.status_code == status, response.text[:300]
    assert response.headers["content-type"].startswith("application/problem+json")
    if code:
        assert response.json()["code"] == code


def test_T24_oversized_json_body_refused(live_server):
    # An unauthenticated endpoint: 32 MiB of JSON where a username is expected, once with an
    # honest Content-Length and once streamed in chunks without one.
    body = b'{"username": "' + b"a" * (32 * MIB) + b'"}'

    def chunks():
        for i in range(0, len(body), 256 * 1024):
            yield body[i : i + 256 * 1024]

    headers = {"content-type": "application/json"}
    with httpx.Client(base_url=live_server, timeout=60) as http:
        for content in (body, chunks()):
            response = http.post("/v1/accounts/prelogin", content=content, headers=headers)
            _problem(response, 413, "payload_too_large")
        # A body of a normal size still works.
        assert http.post("/v1/accounts/prelogin", json={"username": "a"}).status_code == 200


def test_T24_oversized_part_refused(live_server, shared_world, app_settings):
    alice, _, case_id, _, _ = shared_world
    with httpx.Client(base_url=live_server, timeout=60) as http:
        too_big = {
            "file_id": new_id(),
            "version": 1,
            "total_size": 10,
            "part_size": app_settings.max_part_size + 1,
        }
        _problem(
            http.post(f"/v1/cases/{case_id}/uploads", json=too_big, headers=bearer(alice)), 413
        )
        started = http.post(
            f"/v1/cases/{case_id}/uploads",
            json={"file_id": new_id(), "version": 1, "total_size": 1000, "part_size": 1000},
            headers=bearer(alice),
        )
        assert started.status_code == 201
        upload_id = started.json()["upload_id"]
        # The part declared as 1000 bytes; 4 MiB arrive, streamed without a Content-Length.
        flood = b"x" * (4 * MIB)

        def chunks():
            for i in range(0, len(flood), 64 * 1024):
                yield flood[i : i + 64 * 1024]

        response = http.put(
            f"/v1/cases/{case_id}/uploads/{upload_id}/parts/0",
            content=chunks(),
            headers={**bearer(alice), "X-Part-SHA256": hashlib.sha256(flood).hexdigest()},
        )
        assert 400 <= response.status_code < 500, response.status_code
        status = http.get(f"/v1/cases/{case_id}/uploads/{upload_id}", headers=bearer(alice))
        assert status.json()["parts"] == []  # nothing of the flood was kept


def test_T24_file_and_quota_limits(live_server, shared_world, app_settings):
    alice, _, case_id, _, _ = shared_world
    with httpx.Client(base_url=live_server, timeout=60) as http:
        huge = {
            "file_id": new_id(),
            "version": 1,
            "total_size": app_settings.max_file_size + 1,
            "part_size": app_settings.max_part_size,
        }
        _problem(http.post(f"/v1/cases/{case_id}/uploads", json=huge, headers=bearer(alice)), 413)
        over_quota = {
            "file_id": new_id(),
            "version": 1,
            "total_size": min(app_settings.user_quota + 1, app_settings.max_file_size),
            "part_size": app_settings.max_part_size,
        }
        if app_settings.user_quota < app_settings.max_file_size:
            _problem(
                http.post(f"/v1/cases/{case_id}/uploads", json=over_quota, headers=bearer(alice)),
                507,
            )
