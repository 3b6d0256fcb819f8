"""The one alphabet of account names, shared by the server (which refuses to register anything
else) and the client (which refuses to believe anything else from a server).

Lower-case ASCII letters, digits, dot, underscore and hyphen, 3 to 32 of them. Keeping names to
this alphabet is what makes two names that look the same on screen the same name: a server
cannot register "\u0430lice" (Cyrillic a) beside "alice", and a client that is served one by a
hostile server refuses it instead of showing it.
"""

from __future__ import annotations

import re
from typing import Any

# Anchored for the schema of the registration route (a pattern there must match the whole
# value); in Python, check with `is_valid_username`, a full match, never `USERNAME_RE.match`
# (`$` also matches before a trailing newline).
USERNAME_RE = re.compile(r"^[a-z0-9._-]{3,32}$")


def is_valid_username(value: Any) -> bool:
    return isinstance(value, str) and USERNAME_RE.fullmatch(value) is not None
