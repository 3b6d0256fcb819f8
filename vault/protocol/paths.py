"""Folder paths of files inside a case (SPEC.md, "Folder paths").

A path is the folder path and name of one file, '/'-separated, relative to the case root:
`Evidence/photos/IMG_0001.jpg`. It lives only in the encrypted file metadata, so the server never
sees it; but the uploader and a hostile server both choose its bytes, and the client later joins
it under a local directory. Every rule below exists so that an accepted path names the same file
on Linux, macOS and Windows and can never leave the directory it is written into.

`normalize_case_path` is the one gate: NFC first, then every rule on the result; it returns the
canonical form, and a canonical path is its own normal form.
"""

from __future__ import annotations

import re
import unicodedata

from vault.protocol.text import first_refused_char

SEPARATOR = "/"
MAX_SEGMENT_BYTES = 255  # ext4, APFS and NTFS name limits (NTFS counts UTF-16 units, fewer)
MAX_PATH_BYTES = 4096  # Linux PATH_MAX; a case path is joined under a local directory too
MAX_DEPTH = 64  # segments, the name included

# Windows maps these to devices whatever the extension or case ("nul.txt", "Com1.log"), also
# with spaces before the extension ("nul .txt"). Superscript digits count too (COM¹ is COM1);
# COM0 and LPT0 are refused as well, a stricter rule than every Windows version needs.
_RESERVED = re.compile(
    r"(CON|PRN|AUX|NUL|CONIN\$|CONOUT\$|COM[0-9¹²³]|LPT[0-9¹²³]) *(\..*)?", re.IGNORECASE
)
# Forbidden in Windows file names; '/' is our separator and '\\' is refused by its own rule.
_WINDOWS_FORBIDDEN = frozenset('<>:"|?*')


class PathError(ValueError):
    """A folder path or file name breaks one of the rules; the message names the rule."""


def _check_segment(segment: str) -> None:
    if segment == "":
        raise PathError("empty segment: no leading, trailing or doubled '/'")
    if segment in (".", ".."):
        raise PathError(f"'{segment}' segments are refused")
    if segment[-1] in ". ":
        raise PathError("a segment may not end in a dot or a space (Windows drops them)")
    if _RESERVED.fullmatch(segment):
        raise PathError(f"'{segment}' is a name reserved on Windows")
    bad = next((ch for ch in segment if ch in _WINDOWS_FORBIDDEN), None)
    if bad is not None:
        raise PathError(f"the character {bad!r} is not allowed in a file name on Windows")
    if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
        raise PathError(f"a segment is at most {MAX_SEGMENT_BYTES} bytes in UTF-8")


def normalize_case_path(text: str) -> str:
    """The canonical form of a file's folder path and name, or PathError naming the rule."""
    if not isinstance(text, str):
        raise PathError("a path is text")
    if text == "":
        raise PathError("a path is not empty")
    if "\\" in text:
        raise PathError("backslashes are refused ('/' separates folders)")
    bad = first_refused_char(text)
    if bad is not None:
        raise PathError(f"control and format characters are refused (U+{ord(bad):04X})")
    path = unicodedata.normalize("NFC", text)
    if path.startswith(SEPARATOR):
        raise PathError("absolute paths are refused; a path is relative to the case")
    if re.match(r"[A-Za-z]:", path):
        raise PathError("drive letters are refused; a path is relative to the case")
    if len(path.encode("utf-8")) > MAX_PATH_BYTES:
        raise PathError(f"a path is at most {MAX_PATH_BYTES} bytes in UTF-8")
    segments = path.split(SEPARATOR)
    if len(segments) > MAX_DEPTH:
        raise PathError(f"a path is at most {MAX_DEPTH} segments deep")
    for segment in segments:
        _check_segment(segment)
    return path


def normalize_folder(text: str) -> str:
    """A folder: '' is the case root, anything else follows the path rules."""
    return "" if text == "" else normalize_case_path(text)


def join_folder(folder: str, name: str) -> str:
    """The path of `name` inside `folder` ('' is the case root); `name` is one segment."""
    if not isinstance(name, str) or SEPARATOR in name:
        raise PathError("a file name is one segment, without '/'")
    folder = normalize_folder(folder)
    return normalize_case_path(f"{folder}{SEPARATOR}{name}" if folder else name)


def split_path(path: str) -> tuple[str, str]:
    """(folder, name) of a path; the folder of a file at the case root is ''."""
    path = normalize_case_path(path)
    folder, _, name = path.rpartition(SEPARATOR)
    return folder, name


def collision_key(path: str) -> str:
    """Equal for two paths that name one file on a case-insensitive file system (Windows and
    macOS by default): a client writing a tree refuses the second rather than overwrite."""
    return unicodedata.normalize("NFC", normalize_case_path(path).casefold())


def is_inside(folder: str, path: str) -> bool:
    """Is the file at `path` in `folder` or any folder below it? Every path is inside ''."""
    folder, path = normalize_folder(folder), normalize_case_path(path)
    return folder == "" or path.startswith(folder + SEPARATOR)
