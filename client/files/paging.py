"""A case's file list fetched in pages, and the checks that keep a hostile server's pages honest.

The server orders versions by (file_id, version) and pages with `?limit=N&after=FILE_ID:VERSION`
(docs/API.md). Joining pages trusts nothing the server says about where a page ends: every entry
must lie strictly after the one before it (so no entry repeats, within a page or across pages,
and nothing is reordered), `next` must name the page's own last entry, and only a full page may
have a next one. The cursor therefore rises with every page, so a server cannot make the client
ask for the same page twice; MAX_LISTED_VERSIONS bounds a server that invents entries forever.

What paging cannot show is a page the server leaves out; the per-file memory of verified
versions (client/files/history.py) is what catches a hidden file the client has seen before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from client import crypto
from client.errors import VaultError
from vault.protocol.cursor import format_cursor
from vault.protocol.ids import is_valid_id

# Versions per request: a 10,000-file case is ten short requests instead of one long one that
# holds a server worker (and everyone queued behind it) for the whole list.
LIST_PAGE_SIZE = 1000
# Far above any real case (the benchmarks use 10,000 files); only a server inventing entries
# without end reaches it.
MAX_LISTED_VERSIONS = 1_000_000

Key = tuple[str, int]
# `fetch(limit, after)`: one page after the (file_id, version) cursor (None for the first).
PageFetcher = Callable[[int, Key | None], Any]


def _key(entry: object, what: str) -> Key:
    if not isinstance(entry, dict):
        raise crypto.IntegrityError(what)
    file_id, version = entry.get("file_id"), entry.get("version")
    # bool is an int in Python; a JSON `true` is not a version number.
    if (not is_valid_id(file_id) or not isinstance(version, int) or isinstance(version, bool)
            or version < 1):
        raise crypto.IntegrityError(what)
    return file_id, version


def check_page(reply: object, *, limit: int, after: Key | None,
               what: str) -> tuple[list[dict[str, Any]], Key | None]:
    """The versions of one page and the cursor of the next (None on the last page).

    Raises IntegrityError for a page out of order, overlapping the previous one, repeating an
    entry, longer than asked, or whose `next` is not its own last entry of a full page.
    """
    if not isinstance(reply, dict):
        raise crypto.IntegrityError(what)
    versions, nxt = reply.get("versions"), reply.get("next", ...)
    if not isinstance(versions, list) or len(versions) > limit:
        raise crypto.IntegrityError(what)
    last = after
    for entry in versions:
        key = _key(entry, what)
        if last is not None and key <= last:
            raise crypto.IntegrityError(what)  # reordered, repeated, or not after the cursor
        last = key
    if nxt is None:
        return versions, None
    # Present and not null: a full page whose last entry is where the next page starts.
    if not versions or len(versions) != limit or last is None:
        raise crypto.IntegrityError(what)
    if nxt != format_cursor(*last):
        raise crypto.IntegrityError(what)
    return versions, last


def fetch_all_versions(fetch: PageFetcher, *, case_id: str,
                       page_size: int | None = None) -> list[dict[str, Any]]:
    """Every version of the case, page by page; `fetch(limit, after)` returns one reply.

    `page_size` defaults to LIST_PAGE_SIZE as it is when called (tests set a small one)."""
    page_size = page_size or LIST_PAGE_SIZE
    what = f"file list of case {case_id}"
    versions: list[dict[str, Any]] = []
    cursor: Key | None = None
    while True:
        page, cursor = check_page(fetch(page_size, cursor), limit=page_size, after=cursor,
                                  what=what)
        versions.extend(page)
        if cursor is None:
            return versions
        if len(versions) >= MAX_LISTED_VERSIONS:
            raise VaultError(f"the file list of case {case_id} goes on past "
                             f"{MAX_LISTED_VERSIONS:,} versions; this client stops there")
