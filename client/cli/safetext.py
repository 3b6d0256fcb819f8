"""Text that came from the server or from another person, made safe to show on a terminal.

A file name, a case name, a username, an audit string or a server's error text is chosen by
someone else. Shown as it is, an ESC sequence in it can move the cursor and rewrite a row of
`ls`, clear the screen or set the clipboard (OSC 52); a bidirectional override can make a name
read backwards; a newline can forge a line of output. Every such string goes through `shown`
before it reaches stdout or stderr in human output: control characters (C0, DEL, C1), format
characters (Unicode Cf: the bidi embeddings, overrides and isolates U+202A-202E and
U+2066-2069, zero-width characters, the BOM) and line/paragraph separators are written as
visible escapes (\\x1b, \\u202e). Rich markup is escaped where Rich renders the text. --json
output is not touched: it is exact, and JSON escapes control characters itself.
"""

from __future__ import annotations

import unicodedata
from typing import Any

from rich.markup import escape as _rich_escape

# Cc: C0, DEL and C1 controls; Cf: format characters (bidi controls among them); Zl/Zp: line
# and paragraph separators; Cs: lone surrogates (from escaped bytes of an invalid name).
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


def _escape_char(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def shown(value: Any) -> str:
    """`value` as text with every control, format and separator character visibly escaped."""
    text = str(value)
    if text.isprintable() and text.isascii():
        return text  # the common case: nothing to look at
    return "".join(
        _escape_char(ch) if unicodedata.category(ch) in _UNSAFE_CATEGORIES else ch
        for ch in text)


def shown_markup(value: Any) -> str:
    """`shown`, for a place where Rich interprets markup (progress labels)."""
    return _rich_escape(shown(value))
