"""Bounds of the integers a client sends in a path, a query or a JSON field.

Every integer from a client is checked against the column it may reach before any service sees
it: SQLite stores at most 2^63 - 1 and PostgreSQL's INTEGER at most 2^31 - 1, and beyond those a
driver raises (a 500) instead of the client getting a clear 422.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path
from pydantic import Field

# Versions, part numbers and membership positions are INTEGER columns.
INT32_MAX = 2**31 - 1
# Sizes are BIGINT columns, and canonical JSON integers stop at the same bound.
INT64_MAX = 2**63 - 1

VersionField = Annotated[int, Field(ge=1, le=INT32_MAX)]
SizeField = Annotated[int, Field(ge=1, le=INT64_MAX)]
VersionPath = Annotated[int, Path(ge=1, le=INT32_MAX)]
PartNumberPath = Annotated[int, Path(ge=0, le=INT32_MAX)]
