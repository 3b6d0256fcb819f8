"""T11 through the paged file list: the client joins the case's listing from pages of 3, and a
hostile server bends the pages instead of its database. Overlapping pages, a `next` that loops
or points anywhere but the page's own end, a reordered or repeated entry, or a short page that
claims a successor are refused after at most one request past the bad page; a server inventing
entries without end is stopped at the client's bound. A page left out of the middle passes the
page checks by construction, and the client's memory of the files it verified catches it.

The server is real (uvicorn, real database); the attacker is an httpx transport between the
client and that server, rewriting only the replies of the file list."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest
from attack_kit import PASSPHRASE

from client.crypto.errors import IntegrityError
from client.errors import VaultError
from client.files import paging
from client.vault import Vault

PAGE = 3
Rewrite = Callable[[list[dict], int, str | None], dict]


class HostileLister(httpx.BaseTransport):
    """Real HTTP to the server; a paged file list is answered by `rewrite(every version of the
    case, limit, after)` instead, built from the server's own honest, complete list."""

    def __init__(self, rewrite: Rewrite) -> None:
        self._inner = httpx.HTTPTransport()
        self.rewrite = rewrite
        self.pages: list[str | None] = []  # the `after` of every page asked for

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        params = request.url.params
        if not (request.method == "GET" and request.url.path.endswith("/files")
                and "limit" in params):
            return self._inner.handle_request(request)
        after = params.get("after")
        self.pages.append(after)
        honest = httpx.Request("GET", request.url.copy_with(query=None), headers=request.headers)
        reply = self._inner.handle_request(honest)
        reply.read()
        body = self.rewrite(json.loads(reply.content)["versions"], int(params["limit"]), after)
        return httpx.Response(200, json=body, request=request)

    def close(self) -> None:
        self._inner.close()


def _cursor(v: dict) -> str:
    return f"{v['file_id']}:{v['version']}"


def _start(versions: list[dict], after: str | None) -> int:
    """Index of the first version strictly after `after` (the honest server's rule)."""
    if after is None:
        return 0
    return next(i for i, v in enumerate(versions) if _cursor(v) == after) + 1


def honest_page(versions: list[dict], limit: int, after: str | None) -> dict:
    page = versions[_start(versions, after):][:limit]
    return {"versions": page, "next": _cursor(page[-1]) if len(page) == limit else None}


@pytest.fixture
def paged(monkeypatch):
    monkeypatch.setattr(paging, "LIST_PAGE_SIZE", PAGE)


@pytest.fixture
def eight_files(lawyer, tmp_path, paged):
    """Alice's case of 8 files, one of them at version 2: 9 versions, 3 full pages of 3."""
    alice = lawyer("alice")
    case_id = alice.create_case("R v Paged")
    docs = []
    for i in range(8):
        doc = tmp_path / f"exhibit-{i}.txt"
        doc.write_bytes(f"exhibit {i}".encode())
        docs.append(doc)
    put = alice.put(case_id, docs)
    docs[0].write_bytes(b"exhibit 0, corrected")
    alice.put(case_id, [docs[0]], file_id=put[0]["file_id"])
    return alice, case_id


def _hostile(alice: Vault, rewrite: Rewrite) -> tuple[Vault, HostileLister]:
    net = HostileLister(rewrite)
    return Vault(str(alice.keystore.home), passphrase=PASSPHRASE, transport=net), net


def test_T11_honest_pages_join_into_the_whole_list(eight_files):
    alice, case_id = eight_files
    vault, net = _hostile(alice, honest_page)
    listed = vault.ls(case_id)
    assert len(listed) == 8
    # 9 versions in pages of 3: three full pages, then an empty last page with next null.
    assert len(net.pages) == 4 and net.pages[0] is None
    assert len(set(net.pages)) == 4


def test_T11_overlapping_pages_are_refused(eight_files):
    alice, case_id = eight_files

    def overlap(versions, limit, after):
        # Each page starts at the cursor itself: the last entry of a page comes back again.
        start = max(_start(versions, after) - 1, 0)
        page = versions[start:start + limit]
        return {"versions": page, "next": _cursor(page[-1]) if len(page) == limit else None}

    vault, net = _hostile(alice, overlap)
    with pytest.raises(IntegrityError, match=f"file list of case {case_id}"):
        vault.ls(case_id)
    assert len(net.pages) == 2


def test_T11_looping_next_is_refused_and_never_loops(eight_files):
    alice, case_id = eight_files

    def same_page(versions, limit, after):
        # Whatever the cursor, the first page again, with the same `next`.
        return honest_page(versions, limit, None)

    vault, net = _hostile(alice, same_page)
    with pytest.raises(IntegrityError, match="file list"):
        vault.ls(case_id)
    assert len(net.pages) == 2

    def next_points_back(versions, limit, after):
        # A `next` inside the page (its first entry): the following page would overlap.
        page = honest_page(versions, limit, after)
        return {**page, "next": _cursor(page["versions"][0])}

    vault, net = _hostile(alice, next_points_back)
    with pytest.raises(IntegrityError, match="file list"):
        vault.ls(case_id)
    assert net.pages == [None]


def test_T11_out_of_order_or_repeated_entries_are_refused(eight_files):
    alice, case_id = eight_files

    def swapped(versions, limit, after):
        page = honest_page(versions, limit, after)
        if after is not None:  # the second page has its first two entries swapped
            v = page["versions"]
            v[0], v[1] = v[1], v[0]
        return page

    def repeated(versions, limit, after):
        page = honest_page(versions, limit, after)
        if after is not None:  # the second page holds its first entry twice
            v = page["versions"]
            v[1] = v[0]
            page["next"] = _cursor(v[-1])
        return page

    for rewrite in (swapped, repeated):
        vault, net = _hostile(alice, rewrite)
        with pytest.raises(IntegrityError, match="file list"):
            vault.ls(case_id)
        assert len(net.pages) == 2, rewrite.__name__


def test_T11_a_next_after_a_short_or_empty_page_is_refused(eight_files):
    alice, case_id = eight_files

    def short_with_next(versions, limit, after):
        page = versions[_start(versions, after):][:limit - 1]
        return {"versions": page, "next": _cursor(page[-1])}

    def empty_with_next(versions, limit, after):
        return {"versions": [], "next": _cursor(versions[0])}

    def next_missing(versions, limit, after):
        return {"versions": versions[:limit]}

    for rewrite in (short_with_next, empty_with_next, next_missing):
        vault, net = _hostile(alice, rewrite)
        with pytest.raises(IntegrityError, match="file list"):
            vault.ls(case_id)
        assert net.pages == [None], rewrite.__name__


def test_T11_endless_invented_pages_stop_at_the_bound(eight_files, monkeypatch):
    alice, case_id = eight_files
    monkeypatch.setattr(paging, "MAX_LISTED_VERSIONS", 12)

    def endless(versions, limit, after):
        # Every page is full and strictly after the last: made-up file ids that keep rising.
        n = 0 if after is None else int(after.split(":")[0], 16) + 1
        page = [{**versions[0], "file_id": f"{n + i:032x}", "version": 1} for i in range(limit)]
        return {"versions": page, "next": _cursor(page[-1])}

    vault, net = _hostile(alice, endless)
    with pytest.raises(VaultError, match="goes on past 12 versions"):
        vault.ls(case_id)
    assert len(net.pages) == 12 // PAGE


def test_T11_dropped_middle_page_is_caught_by_the_files_seen(eight_files):
    alice, case_id = eight_files
    seen = {f["file_id"] for f in alice.ls(case_id)}  # paged too: every file verified once
    assert len(seen) == 8

    def skip_second(versions, limit, after):
        # The page after the first is left out; what is sent is consistent in itself.
        if after is not None and after == _cursor(versions[limit - 1]):
            after = _cursor(versions[2 * limit - 1])
        return honest_page(versions, limit, after)

    vault, net = _hostile(alice, skip_second)
    # Which message depends on the random file ids: the dropped page may hold only version 2
    # of the file whose version 1 is on the first page.
    with pytest.raises(IntegrityError, match="hiding a (file|newer version)"):
        vault.ls(case_id)
    assert len(net.pages) == 3
