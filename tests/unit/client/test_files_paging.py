"""Page checks of the file list on replies no honest server sends (shapes; the attacks on
order, overlap and `next` run against a real server in tests/security/test_T11_paged_listing.py)."""

from __future__ import annotations

import pytest

from client.crypto.errors import IntegrityError
from client.files.paging import check_page, fetch_all_versions

A, B = "a" * 32, "b" * 32


def _page(*keys, next_=None):
    return {"versions": [{"file_id": f, "version": v} for f, v in keys], "next": next_}


def test_a_full_page_names_its_last_entry_as_next():
    versions, cursor = check_page(_page((A, 1), (A, 2), next_=f"{A}:2"), limit=2, after=None,
                                  what="list")
    assert cursor == (A, 2) and len(versions) == 2
    assert check_page(_page((B, 1)), limit=2, after=(A, 2), what="list")[1] is None


@pytest.mark.parametrize("reply", [
    None, [], {"next": None}, {"versions": {}, "next": None},
    _page((A, True)), _page((A, 0)), _page((A, "1")), _page(("A" * 32, 1)), _page(("../x", 1)),
    {"versions": ["x"], "next": None},
    _page((A, 1), (A, 2), (A, 3)),  # longer than the limit of 2
    _page((A, 1), (A, 2), next_=2),  # `next` not a cursor string
])
def test_malformed_pages_are_integrity_errors(reply):
    with pytest.raises(IntegrityError, match="list"):
        check_page(reply, limit=2, after=None, what="list")


def test_joined_pages_ask_from_each_next():
    pages = {None: _page((A, 1), (A, 2), next_=f"{A}:2"), (A, 2): _page((B, 1))}
    asked = []

    def fetch(limit, after):
        asked.append((limit, after))
        return pages[after]

    got = fetch_all_versions(fetch, case_id="c", page_size=2)
    assert [(v["file_id"], v["version"]) for v in got] == [(A, 1), (A, 2), (B, 1)]
    assert asked == [(2, None), (2, (A, 2))]
