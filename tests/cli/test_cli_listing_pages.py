"""The file list in pages against the real `casevault-server`: with pages of 3, `ls` and `get`
see exactly what the one-page default sees, each page asks from where the last one ended, and
a server whose `next` loops makes `casevault ls` exit 3 (forged server data) after two pages."""

from __future__ import annotations

import functools

import httpx
import pytest

from client.cli import commands as cli
from client.files import paging
from client.vault import Vault

PASSPHRASE = "correct horse battery staple"
PAGE = 3


class ListingNetwork(httpx.BaseTransport):
    """Real HTTP to the test server, noting the query of every file list request; with `loop`,
    every page of the list is answered with the first page again (a hostile server)."""

    def __init__(self, *, loop: bool = False) -> None:
        self._inner = httpx.HTTPTransport()
        self.loop = loop
        self.lists: list[dict[str, str]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and request.url.path.endswith("/files"):
            self.lists.append(dict(request.url.params))
            if self.loop and "after" in request.url.params:
                params = {k: v for k, v in request.url.params.items() if k != "after"}
                request = httpx.Request("GET", request.url.copy_with(params=params),
                                        headers=request.headers)
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()


@pytest.fixture(autouse=True)
def _cheap_kdf(monkeypatch) -> None:
    monkeypatch.setenv("CASEVAULT_TEST_INSECURE_KDF", "1")


@pytest.fixture
def eight_files(lawyers):
    """Alice's case of 8 files through the CLI, one at version 2: 9 versions."""
    (alice,) = lawyers("alice")
    case_id = alice.json("case", "create", "R v Pages")["case_id"]
    docs = []
    for i in range(8):
        doc = alice.workdir / f"exhibit-{i}.txt"
        doc.write_bytes(f"exhibit {i} ".encode() * (i + 1))
        docs.append(str(doc))
    put = alice.json("put", case_id, *docs)
    first = put[0]["file_id"]
    (alice.workdir / "exhibit-0.txt").write_bytes(b"exhibit 0, corrected")
    alice.json("put", case_id, str(alice.workdir / "exhibit-0.txt"), "--file-id", first)
    return alice, case_id, put


def test_ls_and_get_across_pages(eight_files, monkeypatch) -> None:
    alice, case_id, put = eight_files
    whole = alice.json("ls", case_id)  # the default page of 1000 holds the whole case
    assert len(whole) == 8

    monkeypatch.setattr(paging, "LIST_PAGE_SIZE", PAGE)
    net = ListingNetwork()
    vault = Vault(str(alice.home), passphrase=PASSPHRASE, transport=net)
    assert vault.ls(case_id) == whole
    # 9 versions: three full pages, then an empty one that ends the list; each page asks
    # from the one the previous page named as its `next`.
    assert [p["limit"] for p in net.lists] == [str(PAGE)] * 4
    every = sorted([(item["file_id"], 1) for item in put] + [(put[0]["file_id"], 2)])
    assert [p.get("after") for p in net.lists] == [
        None, *(f"{fid}:{v}" for fid, v in every[PAGE - 1::PAGE])]

    # Every file downloads through the paged list, the last page's too, and the old version.
    out = alice.workdir / "out"
    out.mkdir()
    for item in put:
        got = vault.get(case_id, item["file_id"], output=out / item["file_id"])
        assert got["sha256"] == next(f["sha256"] for f in whole
                                     if f["file_id"] == item["file_id"])
    old = vault.get(case_id, put[0]["file_id"], output=out / "old", version=1)
    assert (out / "old").read_bytes() == b"exhibit 0 " and old["version"] == 1


def test_ls_exits_3_when_next_loops(eight_files, monkeypatch, capsys) -> None:
    alice, case_id, put = eight_files
    monkeypatch.setattr(paging, "LIST_PAGE_SIZE", PAGE)
    net = ListingNetwork(loop=True)
    monkeypatch.setattr(cli, "Vault", functools.partial(Vault, transport=net))
    for key, value in alice.env().items():
        monkeypatch.setenv(key, value)
    capsys.readouterr()
    assert cli.main(["ls", case_id]) == cli.EXIT_INTEGRITY
    err = capsys.readouterr().err
    assert err.strip() == (f"casevault: error: IntegrityError: file list of case {case_id} "
                           "failed verification")
    # The second page came back as the first: refused there, never asked for a third.
    every = sorted([(item["file_id"], 1) for item in put] + [(put[0]["file_id"], 2)])
    assert [p.get("after") for p in net.lists] == [None, "{}:{}".format(*every[PAGE - 1])]
