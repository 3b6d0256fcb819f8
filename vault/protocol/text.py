"""Free text that a record carries and a person later reads (notes, reasons, sources).

Such text is shown in terminals, web pages and printed custody reports, so it must not carry
characters that change what the reader sees: control characters (terminal escapes, line
breaks that forge extra report lines) and the Unicode format characters that reorder or hide
text (U+202E RIGHT-TO-LEFT OVERRIDE makes "gpj.exe" read as "exe.jpg").
"""

from __future__ import annotations

import unicodedata
from typing import Any

# Cc: C0/C1 controls, DEL. Cf: bidi embeddings, overrides and isolates, zero-width characters.
# Zl, Zp: U+2028 and U+2029 break lines like a newline. Cs: lone surrogates, which a JSON
# parser lets through ("\ud800") and no encoder can write back.
REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def first_refused_char(text: str) -> str | None:
    """The first character of `text` in a refused category, or None."""
    for ch in text:
        if unicodedata.category(ch) in REFUSED_CATEGORIES:
            return ch
    return None


def is_clean_text(value: Any, *, max_chars: int, allow_empty: bool = True) -> bool:
    """A str in NFC of at most `max_chars` characters with no refused character."""
    return (
        isinstance(value, str)
        and (allow_empty or len(value) > 0)
        and len(value) <= max_chars
        and unicodedata.is_normalized("NFC", value)
        and first_refused_char(value) is None
    )
