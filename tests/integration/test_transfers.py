"""Resumable uploads in parts, ranged downloads, atomic visibility, limits and collection."""

from __future__ import annotations

import hashlib
import secrets
import socket
import threading
import time
from datetime import timedelta

import httpx
import pytest
import uvicorn
from casekit import PART, CaseKit

from vault.api.app import create_app
from vault.db.engine import make_engine, make_sessionmaker
from vault.protocol.ids import new_id
from vault.services.gc import collect_garbage
from vault.storage import FilesystemBlobStore


@pytest.fixture
def setup(client, make_user):
    kit = CaseKit(client)
    alice, bob = make_user("alice"), make_user("bob")
    case = kit.create_case(alice)
    assert kit.add(alice, case, bob, "editor").status_code == 201
    return kit, case, alice, bob


def _status(kit, case, user, upload_id):
    r = kit.client.get(f"/v1/cases/{case.case_id}/uploads/{upload_id}", headers=user.headers)
    assert r.status_code == 200, r.text
    return r.json()


def _blob_files(app_settings) -> list:
    root = app_settings.resolved_blob_dir()
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def _parts(data: bytes, size: int = PART) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def test_parts_in_any_order_resend_is_idempotent_and_status_resumes(setup, app_settings):
    kit, case, alice, bob = setup
    data = secrets.token_bytes(5 * PART + 123)
    parts = _parts(data)
    file_id = new_id()
    r = kit.start_upload(bob, case, file_id, 1, len(data))
    assert r.status_code == 201 and r.json()["part_count"] == 6
    upload_id = r.json()["upload_id"]
    for n in (4, 0, 5):
        assert kit.put_part(bob, case, upload_id, n, parts[n]).status_code == 200
    # The same part again: accepted, nothing duplicated.
    again = kit.put_part(bob, case, upload_id, 4, parts[4])
    assert again.status_code == 200
    assert again.json() == {
        "part_number": 4,
        "size": PART,
        "sha256": hashlib.sha256(parts[4]).hexdigest(),
    }
    # "The connection dropped": a new client asks what the server holds and sends the rest.
    status = _status(kit, case, bob, upload_id)
    held = {p["part_number"] for p in status["parts"]}
    assert held == {0, 4, 5}
    assert len(_blob_files(app_settings)) == 3
    # Completing early names what is missing.
    r = kit.complete(bob, case, upload_id, kit.manifest(bob, case, file_id, 1, data))
    assert r.status_code == 409 and r.json()["code"] == "upload_incomplete"
    assert r.json()["missing"] == [1, 2, 3]
    for n in sorted(set(range(6)) - held):
        assert kit.put_part(bob, case, upload_id, n, parts[n]).status_code == 200
    r = kit.complete(bob, case, upload_id, kit.manifest(bob, case, file_id, 1, data))
    assert r.status_code == 201, r.text
    assert kit.download(alice, case, file_id).content == data
    # The version is its six part blobs, kept as they are (no copy); the session is gone.
    assert len(_blob_files(app_settings)) == 6
    gone = kit.client.get(f"/v1/cases/{case.case_id}/uploads/{upload_id}", headers=bob.headers)
    assert gone.status_code == 404


def test_a_part_resent_with_other_bytes_replaces_the_old_one(setup, app_settings):
    kit, case, alice, bob = setup
    data = secrets.token_bytes(2 * PART)
    file_id = new_id()
    upload_id = kit.start_upload(bob, case, file_id, 1, len(data)).json()["upload_id"]
    kit.put_part(bob, case, upload_id, 0, secrets.token_bytes(PART))
    for n, part in enumerate(_parts(data)):
        assert kit.put_part(bob, case, upload_id, n, part).status_code == 200
    assert len(_blob_files(app_settings)) == 2
    r = kit.complete(bob, case, upload_id, kit.manifest(bob, case, file_id, 1, data))
    assert r.status_code == 201
    assert kit.download(bob, case, file_id).content == data


@pytest.mark.parametrize(
    "body,sha,code",
    [
        (b"short", None, "part_mismatch"),
        (b"y" * PART, "00" * 32, "part_mismatch"),
        (b"y" * PART, "not-hex", "invalid_request"),
    ],
)
def test_bad_parts_are_refused_and_leave_nothing(setup, app_settings, body, sha, code):
    kit, case, alice, bob = setup
    upload_id = kit.start_upload(bob, case, new_id(), 1, 2 * PART).json()["upload_id"]
    r = kit.put_part(bob, case, upload_id, 0, body, sha=sha)
    assert r.status_code == 400 and r.json()["code"] == code, r.text
    assert _status(kit, case, bob, upload_id)["parts"] == []
    assert _blob_files(app_settings) == []


def test_a_part_longer_than_declared_is_refused_while_streaming(setup, app_settings):
    kit, case, alice, bob = setup
    upload_id = kit.start_upload(bob, case, new_id(), 1, PART).json()["upload_id"]

    def body():
        # No Content-Length: the server must count as it streams.
        yield b"x" * PART
        yield b"x" * 10

    r = kit.client.put(
        f"/v1/cases/{case.case_id}/uploads/{upload_id}/parts/0",
        content=body(),
        headers={**bob.headers, "X-Part-SHA256": "00" * 32},
    )
    assert r.status_code == 400 and r.json()["code"] == "part_mismatch"
    assert _blob_files(app_settings) == []


def test_part_numbers_outside_the_upload_are_refused(setup):
    kit, case, alice, bob = setup
    upload_id = kit.start_upload(bob, case, new_id(), 1, PART).json()["upload_id"]
    assert kit.put_part(bob, case, upload_id, 1, b"x").status_code == 400
    r = kit.put_part(bob, case, upload_id, -1, b"x")
    assert r.status_code in (400, 422)


def test_incomplete_upload_is_never_visible(setup):
    kit, case, alice, bob = setup
    data = secrets.token_bytes(3 * PART)
    file_id = new_id()
    upload_id = kit.start_upload(bob, case, file_id, 1, len(data)).json()["upload_id"]
    for n, part in enumerate(_parts(data)):
        kit.put_part(bob, case, upload_id, n, part)
        listing = kit.client.get(f"/v1/cases/{case.case_id}/files", headers=alice.headers)
        assert listing.json()["versions"] == []
        assert kit.download(alice, case, file_id).status_code == 404
    assert (
        kit.complete(bob, case, upload_id, kit.manifest(bob, case, file_id, 1, data)).status_code
        == 201
    )
    listing = kit.client.get(f"/v1/cases/{case.case_id}/files", headers=alice.headers)
    assert [v["file_id"] for v in listing.json()["versions"]] == [file_id]


def test_abort_removes_the_session_and_its_parts(setup, app_settings):
    kit, case, alice, bob = setup
    upload_id = kit.start_upload(bob, case, new_id(), 1, 2 * PART).json()["upload_id"]
    kit.put_part(bob, case, upload_id, 0, b"a" * PART)
    r = kit.client.delete(f"/v1/cases/{case.case_id}/uploads/{upload_id}", headers=bob.headers)
    assert r.status_code == 204
    assert _blob_files(app_settings) == []
    r = kit.client.get(f"/v1/cases/{case.case_id}/uploads/{upload_id}", headers=bob.headers)
    assert r.status_code == 404


# ---------------------------------------------------------------- Range


@pytest.fixture
def stored(setup):
    kit, case, alice, bob = setup
    data = secrets.token_bytes(3 * PART + 7)
    file_id, done = kit.upload(bob, case, data)
    assert done.status_code == 201
    return kit, case, alice, file_id, data


@pytest.mark.parametrize(
    "header,start,end",
    [
        ("bytes=0-0", 0, 1),
        ("bytes=10-99", 10, 100),
        ("bytes=100000-", 100000, None),
        ("bytes=-500", -500, None),
        ("bytes=5-999999999", 5, None),
    ],
)
def test_range_returns_206_with_content_range(stored, header, start, end):
    kit, case, alice, file_id, data = stored
    r = kit.download(alice, case, file_id, Range=header)
    expected = data[start:end]
    assert r.status_code == 206, r.text
    assert r.content == expected
    first = start if start >= 0 else len(data) + start
    assert r.headers["content-range"] == f"bytes {first}-{first + len(expected) - 1}/{len(data)}"
    assert r.headers["content-length"] == str(len(expected))


@pytest.mark.parametrize(
    "header", ["bytes=999999-", "bytes=10-5", "bytes=-0", "bytes=0-1,5-6", "items=0-1", "bytes="]
)
def test_unsatisfiable_range_is_416(stored, header):
    kit, case, alice, file_id, data = stored
    r = kit.download(alice, case, file_id, Range=header)
    assert r.status_code == 416
    assert r.json()["code"] == "range_not_satisfiable"
    assert r.headers["content-range"] == f"bytes */{len(data)}"


def test_download_resumes_with_range(stored):
    kit, case, alice, file_id, data = stored
    cut = 70_001
    head = kit.download(alice, case, file_id, Range=f"bytes=0-{cut - 1}").content
    tail = kit.download(alice, case, file_id, Range=f"bytes={cut}-").content
    assert head + tail == data


# ---------------------------------------------------------------- limits


def test_limits_are_clear_problems(client, make_user, app_settings):
    app = create_app(
        app_settings.model_copy(
            update={"max_part_size": 1000, "max_file_size": 5000, "user_quota": 8000}
        )
    )
    from fastapi.testclient import TestClient

    with TestClient(app) as limited:
        kit = CaseKit(limited)
        alice = make_user("alice")
        case = kit.create_case(alice)
        r = kit.start_upload(alice, case, new_id(), 1, 2000, part_size=1001)
        assert r.status_code == 413 and r.json()["code"] == "part_too_large"
        r = kit.start_upload(alice, case, new_id(), 1, 5001, part_size=1000)
        assert r.status_code == 413 and r.json()["code"] == "file_too_large"
        file_id, done = kit.upload(alice, case, b"q" * 5000, part_size=1000)
        assert done.status_code == 201
        # An open session counts against the quota too.
        r = kit.start_upload(alice, case, new_id(), 1, 2000, part_size=1000)
        assert r.status_code == 201
        r = kit.start_upload(alice, case, new_id(), 1, 1001, part_size=1000)
        assert r.status_code == 507 and r.json()["code"] == "quota_exceeded"
        r = kit.start_upload(alice, case, new_id(), 1, 0, part_size=1000)
        assert r.status_code == 422 and r.json()["code"] == "invalid_request"


# ---------------------------------------------------------------- garbage collection


def test_gc_removes_abandoned_sessions_and_orphans_but_keeps_live_data(
    setup, app, app_settings, clock
):
    kit, case, alice, bob = setup
    store = app.state.blob_store
    kept_id, done = kit.upload(bob, case, b"keep me" * 100)
    assert done.status_code == 201
    abandoned = kit.start_upload(bob, case, new_id(), 1, 2 * PART).json()["upload_id"]
    kit.put_part(bob, case, abandoned, 0, b"p" * PART)
    orphan = store.put([b"written, then the server crashed before the row"])
    half = store.writer()
    half.write(b"never committed")
    engine = make_engine(app_settings.database_url)
    db = make_sessionmaker(engine)()
    try:
        # Young things are left alone: they may belong to a request in flight.
        report = collect_garbage(db, store, app_settings, now=clock.now)
        assert (report.sessions_removed, report.blobs_removed) == (0, 0)
        assert store.exists(orphan.key)
        later = clock.now + timedelta(seconds=app_settings.upload_session_max_age + 60)
        report = collect_garbage(db, store, app_settings, now=later)
    finally:
        db.close()
        engine.dispose()
    assert report.sessions_removed == 1
    assert report.blobs_removed == 1
    assert report.incomplete_writes_removed == 1
    assert not store.exists(orphan.key)
    r = kit.client.get(f"/v1/cases/{case.case_id}/uploads/{abandoned}", headers=bob.headers)
    assert r.status_code == 404
    assert kit.download(alice, case, kept_id).content == b"keep me" * 100
    assert len(list(store.iter_blobs())) == 1


# ---------------------------------------------------------------- over real HTTP


@pytest.fixture
def live(app_settings, clock):
    """The same database and blob store served by a real uvicorn on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(app_settings, clock=clock), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    yield port
    server.should_exit = True
    thread.join(timeout=10)


def test_interrupted_part_leaves_nothing_and_the_upload_resumes(setup, live, app_settings, caplog):
    kit, case, alice, bob = setup
    data = secrets.token_bytes(2 * PART)
    parts = _parts(data)
    file_id = new_id()
    upload_id = kit.start_upload(bob, case, file_id, 1, len(data)).json()["upload_id"]
    path = f"/v1/cases/{case.case_id}/uploads/{upload_id}/parts/1"
    with socket.create_connection(("127.0.0.1", live)) as sock:
        request = (
            f"PUT {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {bob.token}\r\n"
            f"X-Part-SHA256: {hashlib.sha256(parts[1]).hexdigest()}\r\n"
            f"Content-Length: {PART}\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        sock.sendall(request.encode() + parts[1][: PART // 2])
        time.sleep(0.3)
    base = f"http://127.0.0.1:{live}"
    with httpx.Client(base_url=base, headers=bob.headers, timeout=10) as http:
        deadline = time.monotonic() + 10
        while any(p.name.startswith(".tmp-") for p in _blob_files(app_settings)):
            assert time.monotonic() < deadline, "the aborted part left a temporary file"
            time.sleep(0.05)
        status = http.get(f"/v1/cases/{case.case_id}/uploads/{upload_id}").json()
        assert status["parts"] == []
        # An interrupted part is routine, not a server error.
        assert not [r for r in caplog.records if r.name == "vault.api" and r.levelname == "ERROR"]
        assert _blob_files(app_settings) == []
        for n, part in enumerate(parts):
            r = http.put(
                f"/v1/cases/{case.case_id}/uploads/{upload_id}/parts/{n}",
                content=part,
                headers={"X-Part-SHA256": hashlib.sha256(part).hexdigest()},
            )
            assert r.status_code == 200, r.text
        done = http.post(
            f"/v1/cases/{case.case_id}/uploads/{upload_id}/complete",
            json=kit.manifest(bob, case, file_id, 1, data),
        )
        assert done.status_code == 201, done.text
        # A download cut off part way resumes from where it stopped.
        url = f"/v1/cases/{case.case_id}/files/{file_id}/versions/1/blob"
        received = b""
        with http.stream("GET", url) as response:
            for chunk in response.iter_bytes(4096):
                received += chunk
                if len(received) >= 50_000:
                    break
        rest = http.get(url, headers={"Range": f"bytes={len(received)}-"})
        assert rest.status_code == 206
        assert received + rest.content == data


def test_filesystem_store_is_the_default(app):
    assert isinstance(app.state.blob_store, FilesystemBlobStore)


def test_gc_command_runs_a_collection(setup, app, app_settings, capsys):
    from vault.cli import main

    kit, case, alice, bob = setup
    file_id, _ = kit.upload(bob, case, b"live" * 10)
    exit_code = main(
        [
            "gc",
            "--data-dir",
            str(app_settings.data_dir),
            "--database-url",
            app_settings.database_url,
        ]
    )
    assert exit_code == 0
    assert "removed 0 abandoned uploads, 0 orphan blobs" in capsys.readouterr().out
    assert kit.download(alice, case, file_id).content == b"live" * 10
