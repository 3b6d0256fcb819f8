"""The file listing cursor `FILE_ID:VERSION`: the last version of one page, after which the
next page starts. Built by the client, parsed by the server, written into the listing's log
entry; one definition for all three."""

from __future__ import annotations

from vault.protocol.ids import is_valid_id

MAX_VERSION = 2**31 - 1  # versions count from 1 per file; anything larger is not a real one


class CursorError(ValueError):
    """The text is not a listing cursor."""


def format_cursor(file_id: str, version: int) -> str:
    return f"{file_id}:{version}"


def parse_cursor(text: str) -> tuple[str, int]:
    """(file_id, version) of a cursor; CursorError for anything else (full match, bounded)."""
    file_id, sep, version = text.partition(":")
    if (
        not sep
        or not is_valid_id(file_id)
        or not (version.isascii() and version.isdigit())
        or len(version) > len(str(MAX_VERSION))
        or version != str(int(version))
    ):
        raise CursorError(f"not a listing cursor: {text!r}")
    number = int(version)
    if number > MAX_VERSION:
        raise CursorError(f"not a listing cursor: {text!r}")
    return file_id, number
