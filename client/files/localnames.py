"""Where a downloaded file may land: names chosen by someone else, checked before any write.

A file's name is the uploader's choice (authenticated, but a co-counsel's choice all the same),
and without -o it becomes a file in the lawyer's working directory. `.zshenv`, `.bashrc` or
`.git/hooks/...` there is code the lawyer's own shell or tools run later; `CON` or `aux.txt`
is a device on Windows; a separator or a control character makes the name a path or a
terminal command. `check_local_name` refuses all of these with the reason; `path_inside` is
the check for anything that writes several files under one folder (folder downloads): every
component is a checked name and the result, symbolic links resolved, stays under the folder.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

from client.errors import VaultError

# Device names on Windows, with or without an extension, in any case (COM¹ and friends too).
_WINDOWS_RESERVED = re.compile(
    r"(CON|PRN|AUX|NUL|CONIN\$|CONOUT\$|COM[0-9\u00b9\u00b2\u00b3]|LPT[0-9\u00b9\u00b2\u00b3])",
    re.IGNORECASE)
# Separators anywhere, and the characters Windows refuses in a name (':' also opens a stream).
_FORBIDDEN_CHARS = frozenset('/\\<>:"|?*')
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
MAX_NAME_BYTES = 255


class UnsafeFileName(VaultError):
    """A name from the server or an uploader that must not become a file name here."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(
            f"the file is named {ascii(name)}, which {reason}; nothing was written. "
            "Choose where to save it with -o PATH")
        self.name = name
        self.reason = reason


def check_local_name(name: str) -> str:
    """`name` if it is safe as one plain file name in a folder; UnsafeFileName otherwise."""
    if not name or name in (".", ".."):
        raise UnsafeFileName(name, "is not a file name")
    if any(ch in _FORBIDDEN_CHARS for ch in name):
        raise UnsafeFileName(name, "holds a path separator or a character Windows refuses")
    if any(unicodedata.category(ch) in _UNSAFE_CATEGORIES for ch in name):
        raise UnsafeFileName(name, "holds control or invisible formatting characters")
    if name.startswith("."):
        raise UnsafeFileName(name, "starts with a dot (a hidden file, such as a shell's "
                                   "start-up file)")
    if name != name.rstrip(". ") or name != name.lstrip(" "):
        raise UnsafeFileName(name, "starts or ends with a space or ends with a dot")
    if _WINDOWS_RESERVED.fullmatch(name.split(".", 1)[0].rstrip(" ")):
        raise UnsafeFileName(name, "is a device name on Windows")
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        raise UnsafeFileName(name, f"is longer than {MAX_NAME_BYTES} bytes")
    return name


def path_inside(root: Path, relative: str) -> Path:
    """`root`/`relative` for a file written under `root`, refused unless every component is a
    checked name and the path, symbolic links resolved, stays inside `root`."""
    parts = relative.split("/")
    for part in parts:
        check_local_name(part)
    base = root.resolve()
    target = base.joinpath(*parts)
    # A link already on disk (root/a -> /etc) must not carry the write outside.
    if not target.resolve().is_relative_to(base):
        raise UnsafeFileName(relative, "leads outside the target folder")
    return target
