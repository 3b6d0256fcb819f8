"""Receipts (a proven leaf of the audit log) for every own action, against the real server:
deletions, role changes, an upload whose completion reply was lost, and a download whose blob
was already complete on disk when the command ran again."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from client.api import Unreachable
from client.vault import Vault
from vault.protocol import logentry

PASSPHRASE = "correct horse battery staple"


@pytest.fixture(autouse=True)
def _cheap_kdf(monkeypatch) -> None:
    monkeypatch.setenv("CASEVAULT_TEST_INSECURE_KDF", "1")


def _receipts(home: Path) -> list[dict]:
    return json.loads((home / "receipts.json").read_text())


def _entry(server, index: int) -> dict:
    """The event the leaf at `index` records: the body its format-2 skeleton names."""
    ((raw, body),) = server.sql("SELECT entry, body FROM log_leaves WHERE leaf_index = :i",
                                {"i": index})
    return logentry.check_body(logentry.parse_skeleton(bytes(raw)), bytes(body)).__dict__


class _LoseCompletionReply(httpx.BaseTransport):
    """Real HTTP; the server completes the upload, then the reply is lost on the way back."""

    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._inner.handle_request(request)
        if request.method == "POST" and request.url.path.endswith("/complete"):
            response.read()
            raise httpx.ReadError("connection reset by peer", request=request)
        return response

    def close(self) -> None:
        self._inner.close()


class _BodyThenReset(httpx.SyncByteStream):
    def __init__(self, inner: httpx.SyncByteStream) -> None:
        self._inner = inner

    def __iter__(self) -> Iterator[bytes]:
        yield from self._inner
        raise httpx.ReadError("connection reset by peer")

    def close(self) -> None:
        self._inner.close()


class _ResetAfterBlob(httpx.BaseTransport):
    """Real HTTP; a blob download delivers every byte, then the connection breaks."""

    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport()
        self.ranges: list[str | None] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._inner.handle_request(request)
        if request.method == "GET" and request.url.path.endswith("/blob"):
            self.ranges.append(request.headers.get("range"))
            assert isinstance(response.stream, httpx.SyncByteStream)
            response = httpx.Response(response.status_code, headers=response.headers,
                                      stream=_BodyThenReset(response.stream),
                                      extensions=response.extensions, request=request)
        return response

    def close(self) -> None:
        self._inner.close()


def test_rm_and_role_change_keep_receipts(lawyers, server) -> None:
    alice, bob = lawyers("alice", "bob")
    case_id = alice.json("case", "create", "R v Receipts")["case_id"]
    doc = alice.workdir / "note.txt"
    doc.write_bytes(b"attendance note")
    (item,) = alice.json("put", case_id, str(doc))
    alice.run("share", case_id, bob.username, "--role", "viewer")

    changed = alice.json("role", case_id, bob.username, "editor")
    assert changed["role"] == "editor"
    assert {"username": bob.username, "role": "editor", "trust": "unverified"} in alice.json(
        "members", case_id)
    assert "already editor" in alice.fail("role", case_id, bob.username, "editor").stderr
    assert "only an owner" in bob.fail("role", case_id, alice.username, "viewer").stderr

    alice.run("rm", case_id, item["file_id"])
    assert alice.json("ls", case_id) == []

    by_action = {r["action"]: r for r in _receipts(alice.home) if r["case_id"] == case_id}
    assert {"case:member:role_changed", "file:file:deleted"} <= set(by_action)
    deleted = _entry(server, by_action["file:file:deleted"]["index"])
    assert (deleted["file_id"], deleted["actor_id"]) == (item["file_id"], alice.user_id)
    role = _entry(server, by_action["case:member:role_changed"]["index"])
    assert role["detail"]["subject"] == bob.user_id
    summary = alice.json("audit", "--verify")
    assert summary["receipts"] == len(_receipts(alice.home))


def test_upload_whose_completion_reply_was_lost_gets_its_receipt(lawyers, server) -> None:
    (alice,) = lawyers("alice")
    case_id = alice.json("case", "create", "R v Lost Reply")["case_id"]
    doc = alice.workdir / "exhibit.bin"
    doc.write_bytes(os.urandom(300_000))
    lossy = _LoseCompletionReply()
    with pytest.raises(Unreachable):
        Vault(str(alice.home), passphrase=PASSPHRASE, transport=lossy).put(case_id, [doc])
    lossy.close()
    before = {r["index"] for r in _receipts(alice.home)}

    (result,) = Vault(str(alice.home), passphrase=PASSPHRASE).put(case_id, [doc])
    # The resume found the version done: no second upload, and the lost leaf was proven.
    rows = server.sql("SELECT version FROM file_versions WHERE case_id = :c", {"c": case_id})
    assert rows == [(1,)]
    (new,) = [r for r in _receipts(alice.home) if r["index"] not in before]
    assert new["action"] == "file:version:uploaded"
    entry = _entry(server, new["index"])
    assert (entry["file_id"], entry["detail"]["version"]) == (result["file_id"], 1)
    assert not list((alice.home / "transfers").glob("*"))


def test_download_of_a_blob_already_on_disk_gets_its_receipt(lawyers, server) -> None:
    (alice,) = lawyers("alice")
    case_id = alice.json("case", "create", "R v On Disk")["case_id"]
    data = os.urandom(200_000)
    src = alice.workdir / "cctv.bin"
    src.write_bytes(data)
    (item,) = alice.json("put", case_id, str(src))
    out = alice.workdir / "out.bin"
    broken = _ResetAfterBlob()
    with pytest.raises(Unreachable):
        Vault(str(alice.home), passphrase=PASSPHRASE, transport=broken).get(
            case_id, item["file_id"], output=out)
    (partial,) = (alice.home / "transfers").glob("*.blob")
    blob_size = partial.stat().st_size
    assert not out.exists()
    assert server.sql("SELECT blob_size FROM file_versions WHERE case_id = :c",
                      {"c": case_id}) == [(blob_size,)]
    before = {r["index"] for r in _receipts(alice.home)}

    class _Count(httpx.BaseTransport):
        def __init__(self) -> None:
            self.ranges: list[str | None] = []
            self._inner = httpx.HTTPTransport()

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            if request.url.path.endswith("/blob"):
                self.ranges.append(request.headers.get("range"))
            return self._inner.handle_request(request)

    counting = _Count()
    Vault(str(alice.home), passphrase=PASSPHRASE, transport=counting).get(
        case_id, item["file_id"], output=out)
    assert out.read_bytes() == data
    # Only the last byte travelled again: enough for the server to log the access.
    assert counting.ranges == [f"bytes={blob_size - 1}-"]
    (new,) = [r for r in _receipts(alice.home) if r["index"] not in before]
    assert new["action"] == "file:version:downloaded"
    assert _entry(server, new["index"])["file_id"] == item["file_id"]
