"""One listed audit entry, read as the event it records (SPEC.md, "Audit leaf format 2").

A format-1 leaf is the record itself. A format-2 leaf is a skeleton: the record is the body the
server sends beside it, checked against it (`logentry.check_body`), with `source` the address
the server opened the body's commitment to (`logentry.check_source`), or None. An opening that
does not open means the server logged one address and shows another; a user's own event whose
body carries a commitment must come with its opening. Inclusion is the caller's to prove.
"""

from __future__ import annotations

import json
from typing import Any

from client.errors import AuditVerificationError
from vault.protocol import logentry
from vault.protocol.encoding import EncodingError, b64d, parse_canonical


class RowRejected(Exception):
    """An entry the client must not accept; `items` are what the evidence file records."""

    def __init__(self, problem: str, **items: Any) -> None:
        super().__init__(problem)
        self.problem = problem
        self.items = items


def read_row(row: dict[str, Any], index: int, *, own: bool = False) -> tuple[bytes, dict]:
    """(leaf bytes, record) of one row of GET /v1/log/entries; `own`: the user's own event."""
    entry = b64_entry(row.get("entry"))
    record = parse_entry(entry)
    if record.get("v") != logentry.LEAF_VERSION_2:
        return entry, record
    text = entry.decode("utf-8", "replace")
    try:
        skeleton = logentry.parse_skeleton(entry)
        body = logentry.check_body(skeleton, b64_entry(row.get("body")))
    except (logentry.LeafError, AuditVerificationError) as exc:
        raise RowRejected(f"the body of entry {index} does not match its leaf ({exc})",
                          entry=text, body=repr(row.get("body"))[:4000]) from exc
    source = None
    opening = row.get("source_opening")
    if opening is not None:
        try:
            address, nonce = opening["address"], b64d(opening["nonce"])
        except (KeyError, TypeError, EncodingError):
            address, nonce = None, None
        if not logentry.check_source(body, address, nonce):
            raise RowRejected(
                f"the source address shown for entry {index} is not the one the log "
                "committed to",
                entry=text, opening=json.dumps(opening, sort_keys=True)[:2000])
        source = address
    elif own and body.source_commitment is not None:
        raise RowRejected(f"the server withheld the source address of your entry {index}",
                          entry=text)
    record = {
        "v": logentry.LEAF_VERSION_2, "event_id": skeleton.event_id, "time": skeleton.time,
        "action": body.action, "result": body.result, "actor_id": body.actor_id,
        "case_id": body.case_id, "file_id": body.file_id, "source": source,
        "detail": body.detail, "signed_record": body.signed_record,
    }
    return entry, record


def b64_entry(value: Any) -> bytes:
    try:
        return b64d(value)
    except EncodingError as exc:
        raise AuditVerificationError("the server sent an entry that is not base64url") from exc


def parse_entry(entry: bytes) -> dict[str, Any]:
    try:
        return parse_canonical(entry)
    except EncodingError as exc:
        raise AuditVerificationError("a log entry is not a canonical record") from exc
