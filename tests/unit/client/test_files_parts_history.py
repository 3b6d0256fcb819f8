"""PartWriter hashes exactly the parts the server will check; check_listing refuses listings
that hide what the client verified and accepts honest ones."""

from __future__ import annotations

import hashlib
import io
import os

import pytest

from client.crypto.errors import IntegrityError
from client.files.history import check_listing
from client.files.parts import PartWriter


def test_part_writer_hashes_every_part_as_written() -> None:
    data = os.urandom(10_000)
    out = io.BytesIO()
    announced: list[tuple[int, str]] = []
    writer = PartWriter(out, 4096, lambda n, digest: announced.append((n, digest)))
    writer.write(b"")  # an empty write is harmless
    pos = 0
    for size in (1, 4095, 5000, 3, 901):  # writes that straddle part boundaries
        writer.write(memoryview(data[pos:pos + size]))
        pos += size
    digests = writer.close_parts()
    assert out.getvalue() == data
    expected = [hashlib.sha256(data[i:i + 4096]).hexdigest() for i in range(0, len(data), 4096)]
    assert digests == expected
    assert announced == list(enumerate(expected))


def _v(fid: str, version: int, deleted: bool = False) -> dict:
    return {"file_id": fid, "version": version, "deleted": deleted}


def test_check_listing_accepts_honest_growth_and_signed_deletion() -> None:
    seen = {"a" * 32: {"version": 2, "deleted": False},
            "b" * 32: {"version": 1, "deleted": True}}
    check_listing(seen, [_v("a" * 32, 1), _v("a" * 32, 3), _v("b" * 32, 1, True)])
    check_listing({"b" * 32: {"version": 1, "deleted": True}}, [])  # a purged deleted file


@pytest.mark.parametrize(("listing", "problem"), [
    ([_v("a" * 32, 1)], "hiding a newer version"),
    ([], "hiding a file"),
    ([_v("a" * 32, 2), _v("b" * 32, 1)], "hiding its deletion"),
])
def test_check_listing_refuses_rollbacks(listing, problem) -> None:
    seen = {"a" * 32: {"version": 2, "deleted": False},
            "b" * 32: {"version": 1, "deleted": True}}
    if problem != "hiding its deletion":
        seen.pop("b" * 32)
    with pytest.raises(IntegrityError, match=problem):
        check_listing(seen, listing)
