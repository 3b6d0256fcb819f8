"""Interrupted transfers resume, against the real server: the network breaks after some upload
parts went up, or in the middle of a download, and the next attempt sends (or fetches) only what
is missing, finishing with the right SHA-256. The break is real: the HTTP transport under
client.vault raises the error a dropped connection raises, nothing in the client is replaced."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from client import crypto
from client.api import Unreachable
from client.files import upload
from client.vault import Vault

PASSPHRASE = "correct horse battery staple"


class _CutStream(httpx.SyncByteStream):
    """A response body that stops with a read error after `limit` bytes."""

    def __init__(self, inner: httpx.SyncByteStream, limit: int) -> None:
        self._inner = inner
        self._limit = limit

    def __iter__(self) -> Iterator[bytes]:
        sent = 0
        for chunk in self._inner:
            if sent + len(chunk) >= self._limit:
                yield chunk[: self._limit - sent]
                raise httpx.ReadError("connection reset by peer")
            sent += len(chunk)
            yield chunk

    def close(self) -> None:
        self._inner.close()


class FlakyNetwork(httpx.BaseTransport):
    """Real HTTP to the test server that drops the connection on cue, and counts what passed:
    upload part numbers sent, Range headers and body bytes of blob downloads."""

    def __init__(self, *, parts_before_drop: int | None = None,
                 download_bytes_before_drop: int | None = None) -> None:
        self._inner = httpx.HTTPTransport()
        self._parts_before_drop = parts_before_drop
        self._download_limit = download_bytes_before_drop
        self.parts_sent: list[int] = []
        self.ranges: list[str | None] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == "PUT" and "/parts/" in path:
            if (self._parts_before_drop is not None
                    and len(self.parts_sent) >= self._parts_before_drop):
                raise httpx.WriteError("connection reset by peer", request=request)
            self.parts_sent.append(int(path.rsplit("/", 1)[1]))
        response = self._inner.handle_request(request)
        if request.method == "GET" and path.endswith("/blob"):
            self.ranges.append(request.headers.get("range"))
            if self._download_limit is not None:
                assert isinstance(response.stream, httpx.SyncByteStream)
                response = httpx.Response(
                    response.status_code, headers=response.headers,
                    stream=_CutStream(response.stream, self._download_limit),
                    extensions=response.extensions, request=request)
        return response

    def close(self) -> None:
        # Each Api closes its client; the pool is shared, so it is closed once, by the test.
        pass

    def shutdown(self) -> None:
        self._inner.close()


@pytest.fixture
def network():
    made: list[FlakyNetwork] = []

    def make(**kwargs: int) -> FlakyNetwork:
        made.append(FlakyNetwork(**kwargs))
        return made[-1]

    yield make
    for net in made:
        net.shutdown()


@pytest.fixture(autouse=True)
def _cheap_kdf(monkeypatch) -> None:
    monkeypatch.setenv("CASEVAULT_TEST_INSECURE_KDF", "1")


def _transfer_files(home: Path) -> list[str]:
    folder = home / "transfers"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_interrupted_upload_resumes_sending_only_missing_parts(lawyers, network,
                                                               monkeypatch) -> None:
    (alice,) = lawyers("alice")
    case_id = alice.json("case", "create", "R v Resume")["case_id"]
    data = os.urandom(1_300_000)
    path = alice.workdir / "interview.wav"
    path.write_bytes(data)

    # Small parts so the file has several; the network drops after two of them.
    monkeypatch.setattr(upload, "PART_SIZE", 256 * 1024)
    first = network(parts_before_drop=2)
    with pytest.raises(Unreachable):
        Vault(str(alice.home), passphrase=PASSPHRASE, transport=first).put(case_id, [path])
    assert sorted(first.parts_sent) == [0, 1]  # two connections: any order
    # Nothing is visible yet; the resume state and the encrypted blob wait in the keystore.
    assert alice.json("ls", case_id) == []
    assert any(name.endswith(".json") for name in _transfer_files(alice.home))

    # A later run (even one whose default part size changed) resumes the announced upload.
    monkeypatch.setattr(upload, "PART_SIZE", 8 * 1024 * 1024)
    second = network()
    (result,) = Vault(str(alice.home), passphrase=PASSPHRASE, transport=second).put(
        case_id, [path])
    blob_size = alice.server.sql(
        "SELECT blob_size FROM file_versions WHERE case_id = :c AND file_id = :f",
        {"c": case_id, "f": result["file_id"]})[0][0]
    count = -(-blob_size // (256 * 1024))
    assert count > 3
    assert sorted(second.parts_sent) == list(range(2, count))
    assert result["sha256"] == hashlib.sha256(data).hexdigest()
    assert _transfer_files(alice.home) == []
    out = alice.workdir / "copy.wav"
    alice.run("get", case_id, result["file_id"], "-o", str(out))
    assert out.read_bytes() == data


def test_interrupted_download_resumes_with_range(lawyers, network) -> None:
    (alice,) = lawyers("alice")
    case_id = alice.json("case", "create", "R v Download")["case_id"]
    data = os.urandom(1_000_000)
    src = alice.workdir / "cctv.bin"
    src.write_bytes(data)
    (item,) = alice.json("put", case_id, str(src))
    out = alice.workdir / "out.bin"

    cut = 300_000
    first = network(download_bytes_before_drop=cut)
    with pytest.raises(Unreachable):
        Vault(str(alice.home), passphrase=PASSPHRASE, transport=first).get(
            case_id, item["file_id"], output=out)
    assert not out.exists()
    (partial,) = (alice.home / "transfers").glob("*.blob")
    assert partial.stat().st_size == cut

    second = network()
    result = Vault(str(alice.home), passphrase=PASSPHRASE, transport=second).get(
        case_id, item["file_id"], output=out)
    assert second.ranges == [f"bytes={cut}-"]
    assert result["sha256"] == hashlib.sha256(data).hexdigest()
    assert out.read_bytes() == data
    assert _transfer_files(alice.home) == []


def test_a_corrupted_partial_download_is_not_trusted(lawyers, network) -> None:
    """Resuming never skips verification: bytes kept from an earlier attempt that were changed
    on the laptop fail the blob hash, leave no output, and the next attempt starts afresh."""
    (alice,) = lawyers("alice")
    case_id = alice.json("case", "create", "R v Partial")["case_id"]
    data = os.urandom(600_000)
    src = alice.workdir / "doc.bin"
    src.write_bytes(data)
    (item,) = alice.json("put", case_id, str(src))
    out = alice.workdir / "out.bin"
    with pytest.raises(Unreachable):
        Vault(str(alice.home), passphrase=PASSPHRASE,
              transport=network(download_bytes_before_drop=200_000)).get(
            case_id, item["file_id"], output=out)
    (partial,) = (alice.home / "transfers").glob("*.blob")
    kept = bytearray(partial.read_bytes())
    kept[1000] ^= 0x01
    partial.write_bytes(bytes(kept))

    with pytest.raises(crypto.IntegrityError):
        Vault(str(alice.home), passphrase=PASSPHRASE, transport=network()).get(
            case_id, item["file_id"], output=out)
    assert not out.exists()
    assert _transfer_files(alice.home) == []

    fresh = network()
    Vault(str(alice.home), passphrase=PASSPHRASE, transport=fresh).get(
        case_id, item["file_id"], output=out)
    assert fresh.ranges == [None]
    assert out.read_bytes() == data
