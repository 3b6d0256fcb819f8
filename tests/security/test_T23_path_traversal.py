"""T23: path traversal, wildcards and second encodings smuggled in through ids, on every route
with a path parameter, against a real uvicorn (so the URL is parsed as a server parses it).

Ids must be exactly 32 lowercase hex digits before use; blob keys are minted by the server.
No such request may succeed, crash the server, or touch a file outside the blob store.
"""

from __future__ import annotations

import re

import httpx
import pytest
from attack_kit import bearer, walk_routes

from vault.protocol.ids import new_id
from vault.storage.base import InvalidBlobKey
from vault.storage.filesystem import FilesystemBlobStore

# A bare ".." is resolved by any HTTP client before sending (RFC 3986 dot segments), so the
# traversal attempts arrive percent-encoded, as an attacker would send them.
HOSTILE = [
    "%2e%2e",
    "..%2f..%2f..%2fetc%2fpasswd",
    "..%5c..%5cserver.key",
    "%2e%2e%2f%2e%2e%2fserver.key",
    "....%2f%2f",
    "*",
    "%00",
    "0" * 31,
    "0" * 33,
    "A" * 32,
    "g" * 32,
    "0" * 30 + "%2f0",
    "%30" * 32,  # 32 zeros, percent-encoded: a second spelling of a valid id
    "\u0660" * 32,  # Arabic-Indic digits: str.isdigit() is True for these
]


def _urls(app, values: dict[str, str], hostile: str):
    for method, template in walk_routes(app.routes):
        params = re.findall(r"\{(\w+)(?::\w+)?\}", template)
        for target in params:
            if target in ("version", "part_number"):
                continue  # typed integers: FastAPI refuses anything else before our code

            def fill(m, target=target):
                name = m.group(1)
                return hostile if name == target else values.get(name, new_id())

            yield method, template, re.sub(r"\{(\w+)(:\w+)?\}", fill, template)


def test_T23_traversal_ids_rejected_on_every_route(app, live_server, shared_world, app_settings):
    alice, _, case_id, file_id, _ = shared_world
    values = {
        "case_id": case_id,
        "file_id": file_id,
        "upload_id": new_id(),
        "session_id": new_id(),
        "username": "alice",
        "version": "1",
        "part_number": "0",
    }
    before = {p: p.stat().st_mtime_ns for p in app_settings.data_dir.rglob("*") if p.is_file()}
    checked = 0
    # Redirects are followed: a trailing-slash redirect must not lead anywhere useful either.
    with httpx.Client(base_url=live_server, timeout=30, follow_redirects=True) as http:
        for hostile in HOSTILE:
            for method, template, url in _urls(app, values, hostile):
                kwargs = {"headers": bearer(alice)}
                if method in ("POST", "PUT"):
                    kwargs["json"] = {}
                response = http.request(method, url, **kwargs)
                where = f"{method} {template} with {hostile!r}"
                assert response.status_code in (400, 401, 404, 405, 422), where
                if response.content:
                    assert response.headers["content-type"].startswith(
                        ("application/problem+json", "application/json")
                    ), where
                    assert "root:" not in response.text and "Traceback" not in response.text
                checked += 1
    assert checked > 100
    # Nothing in the data folder was changed or removed by any of it.
    after = {p: p.stat().st_mtime_ns for p in app_settings.data_dir.rglob("*") if p.is_file()}
    assert {p: t for p, t in before.items() if "blobs" in str(p)} == {
        p: t for p, t in after.items() if p in before and "blobs" in str(p)
    }
    assert [f["file_id"] for f in alice.ls(case_id)] == [file_id]


@pytest.mark.parametrize("key", ["../server.key", "..", "/etc/passwd", "ab/../../x", "", "AB" * 16])
def test_T23_blob_store_refuses_keys_that_are_not_its_own(tmp_path, key):
    store = FilesystemBlobStore(tmp_path / "blobs")
    (tmp_path / "server.key").write_bytes(b"secret")
    with pytest.raises(InvalidBlobKey):
        list(store.read(key))
    with pytest.raises(InvalidBlobKey):
        store.delete(key)
    assert (tmp_path / "server.key").read_bytes() == b"secret"
