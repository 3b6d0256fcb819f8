"""Audit log leaf format 2: a public skeleton in the tree, a private body bound to it by hash.

The leaf (what the Merkle tree hashes) is the canonical JSON of a SKELETON that any user may
read, because a client scans every leaf after a known point to find membership changes of its
cases (SPEC.md, "Audit leaf format 2 and the revocation scan"). The skeleton therefore carries
only: the event number and time, a case tag and a membership entry hash on the events that
change a case's membership (null on every other event), and the hash of the BODY. The body holds
what the version-1 leaf held, except that the client's source address is replaced by a salted
commitment; it is shown only to those entitled to the event.

Invariants a parser enforces, so that a leaf has exactly one meaning:
- skeleton and body are canonical JSON with exactly their keys and shapes;
- `case_tag` and `membership` are both set or both null;
- a body matches its skeleton: its hash; and `membership` is set exactly for a successful
  membership event, equals the record hash of the membership entry the body carries, and
  `case_tag` is the tag of that entry's case. A server that files a revocation without its
  tag (hiding it from scans) is caught by anyone who checks the body, the author's receipt
  check first.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Any

from vault.protocol.encoding import EncodingError, canonical_json, parse_canonical
from vault.protocol.events import MEMBERSHIP_EVENTS, Action
from vault.protocol.ids import is_valid_id
from vault.protocol.records import LABEL_MEMBERSHIP, RecordError, open_envelope

LEAF_VERSION_1 = "cv1/audit-entry"
LEAF_VERSION_2 = "cv1/audit-entry/2"
LABEL_CASE_TAG = "cv1/audit-case-tag"
LABEL_BODY = "cv1/audit-body"
LABEL_SOURCE = "cv1/audit-source"

SOURCE_NONCE_BYTES = 16
MAX_SOURCE_CHARS = 100
RESULTS = ("success", "failure")

# The events whose signed record is a membership entry; each one must be visible to a scan.
MEMBERSHIP_ACTIONS: frozenset[str] = frozenset(
    {Action.CASE_CREATED, *MEMBERSHIP_EVENTS.values()}
)
_EVENT_OF_ENTRY_ACTION = {"create": Action.CASE_CREATED, **MEMBERSHIP_EVENTS}

_SKELETON_KEYS = frozenset({"v", "event_id", "time", "case_tag", "membership", "body"})
_BODY_KEYS = frozenset(
    {"action", "result", "actor_id", "case_id", "file_id", "source_commitment", "detail",
     "signed_record"}
)
_V1_KEYS = frozenset(
    {"v", "event_id", "time", "action", "result", "actor_id", "case_id", "file_id", "source",
     "detail", "signed_record"}
)
# fullmatch only: `$` would accept a trailing newline.
_HEX64 = re.compile(r"[0-9a-f]{64}")
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")
_ACTION = re.compile(r"[a-z_]+:[a-z_]+:[a-z_]+")
_INT_MAX = 2**63 - 1


class LeafError(ValueError):
    """A leaf skeleton or body is malformed, of an unknown version, or does not match."""


class LegacyLeaf(LeafError):
    """A version-1 leaf where a version-2 skeleton was required (a scan cannot read it)."""


@dataclass(frozen=True)
class Skeleton:
    event_id: int
    time: str
    case_tag: str | None
    membership: str | None
    body: str

    @property
    def is_membership_event(self) -> bool:
        return self.membership is not None


@dataclass(frozen=True)
class Body:
    action: str
    result: str
    actor_id: str | None
    case_id: str | None
    file_id: str | None
    source_commitment: str | None
    detail: dict[str, Any]
    signed_record: dict[str, str] | None


# --- derived values -------------------------------------------------------------------------


def _labelled_hash(label: str, *parts: bytes) -> str:
    return hashlib.sha256(label.encode("ascii") + b"\x00" + b"".join(parts)).hexdigest()


def case_tag(case_id: str) -> str:
    """hex SHA-256(label || 0x00 || case_id): recognisable only by whoever knows the case id."""
    if not is_valid_id(case_id):
        raise LeafError("a case tag is made from a case id")
    return _labelled_hash(LABEL_CASE_TAG, case_id.encode("ascii"))


def _check_source(address: Any, nonce: Any) -> None:
    if not isinstance(nonce, bytes) or len(nonce) != SOURCE_NONCE_BYTES:
        raise LeafError(f"a source nonce is {SOURCE_NONCE_BYTES} random bytes")
    if (
        not isinstance(address, str)
        or not 0 < len(address) <= MAX_SOURCE_CHARS
        or not address.isascii()
        or not address.isprintable()
    ):
        raise LeafError("a source address is short printable ASCII")


def commit_source(address: str, nonce: bytes) -> str:
    """hex SHA-256(label || 0x00 || nonce || address).

    Hiding because the nonce is 128 random bits the server never publishes (without it, the
    IPv4 space could be tried in minutes); binding because the nonce has a fixed length, so
    one commitment opens to one address only.
    """
    _check_source(address, nonce)
    return _labelled_hash(LABEL_SOURCE, nonce, address.encode("ascii"))


def check_source(body: Body, address: str, nonce: bytes) -> bool:
    """Does the server's opening (address, nonce) match the body's source commitment?"""
    if body.source_commitment is None:
        return False
    try:
        expected = commit_source(address, nonce)
    except LeafError:
        return False
    return hmac.compare_digest(expected, body.source_commitment)


def body_hash(body_bytes: bytes) -> str:
    """hex SHA-256(label || 0x00 || canonical body): what the skeleton's `body` names."""
    return _labelled_hash(LABEL_BODY, body_bytes)


def _membership_hash(action: str, result: str, case_id: Any, signed_record: Any) -> str | None:
    """The record hash of the membership entry a membership event carries, else None."""
    if action not in MEMBERSHIP_ACTIONS or result != "success":
        return None
    try:
        entry = open_envelope(LABEL_MEMBERSHIP, signed_record)
    except RecordError as exc:
        raise LeafError("a membership event carries its membership entry") from exc
    if entry.body["case_id"] != case_id:
        raise LeafError("the membership entry belongs to another case")
    if _EVENT_OF_ENTRY_ACTION[entry.body["action"]] != action:
        raise LeafError("the event action does not match its membership entry")
    return entry.record_hash


# --- building (server side) -----------------------------------------------------------------


def build_leaf(
    *,
    event_id: int,
    time: str,
    action: str,
    result: str,
    actor_id: str | None,
    case_id: str | None,
    file_id: str | None,
    source: tuple[str, bytes] | None,
    detail: dict[str, Any],
    signed_record: dict[str, str] | None,
) -> tuple[bytes, bytes]:
    """(skeleton bytes, body bytes) of one event; `source` is (address, nonce) or None.

    The skeleton bytes are the Merkle leaf. Every value is checked by the same parser a reader
    uses, so the server cannot write a leaf that a client would refuse.
    """
    commitment = commit_source(*source) if source is not None else None
    body_bytes = canonical_json(
        {
            "action": action,
            "result": result,
            "actor_id": actor_id,
            "case_id": case_id,
            "file_id": file_id,
            "source_commitment": commitment,
            "detail": detail,
            "signed_record": signed_record,
        }
    )
    membership = _membership_hash(action, result, case_id, signed_record)
    skeleton_bytes = canonical_json(
        {
            "v": LEAF_VERSION_2,
            "event_id": event_id,
            "time": time,
            "case_tag": case_tag(case_id) if membership is not None else None,
            "membership": membership,
            "body": body_hash(body_bytes),
        }
    )
    check_body(parse_skeleton(skeleton_bytes), body_bytes)
    return skeleton_bytes, body_bytes


# --- parsing (client side) ------------------------------------------------------------------


def _parse(data: Any) -> dict[str, Any]:
    if not isinstance(data, bytes):
        raise LeafError("a leaf is bytes")
    try:
        return parse_canonical(data)
    except EncodingError as exc:
        raise LeafError("a leaf is canonical JSON") from exc


def _hex64(value: Any) -> bool:
    return isinstance(value, str) and _HEX64.fullmatch(value) is not None


def _optional_id(value: Any) -> bool:
    return value is None or is_valid_id(value)


def parse_skeleton(data: bytes) -> Skeleton:
    """Strict parse of a version-2 leaf; a version-1 leaf raises LegacyLeaf."""
    obj = _parse(data)
    if obj.get("v") == LEAF_VERSION_1:
        raise LegacyLeaf("a version-1 leaf has no skeleton")
    if obj.get("v") != LEAF_VERSION_2:
        raise LeafError("unknown leaf version")
    if set(obj) != _SKELETON_KEYS:
        raise LeafError("a skeleton has exactly its fields")
    event_id, time = obj["event_id"], obj["time"]
    if not isinstance(event_id, int) or isinstance(event_id, bool) or not 0 < event_id <= _INT_MAX:
        raise LeafError("event_id is a positive integer")
    if not isinstance(time, str) or _TIME.fullmatch(time) is None:
        raise LeafError("time is YYYY-MM-DDTHH:MM:SS.ffffffZ")
    tag, membership = obj["case_tag"], obj["membership"]
    if (tag is None) != (membership is None):
        raise LeafError("case_tag and membership are set together or not at all")
    if tag is not None and not (_hex64(tag) and _hex64(membership)):
        raise LeafError("case_tag and membership are hashes")
    if not _hex64(obj["body"]):
        raise LeafError("body is a hash")
    return Skeleton(event_id, time, tag, membership, obj["body"])


def _parse_body(obj: dict[str, Any]) -> Body:
    if set(obj) != _BODY_KEYS:
        raise LeafError("a body has exactly its fields")
    action, result = obj["action"], obj["result"]
    if not isinstance(action, str) or _ACTION.fullmatch(action) is None:
        raise LeafError("action is source:subject:action")
    if result not in RESULTS:
        raise LeafError("result is success or failure")
    if not all(_optional_id(obj[k]) for k in ("actor_id", "case_id", "file_id")):
        raise LeafError("actor_id, case_id and file_id are ids or null")
    if obj["source_commitment"] is not None and not _hex64(obj["source_commitment"]):
        raise LeafError("source_commitment is a hash or null")
    if not isinstance(obj["detail"], dict):
        raise LeafError("detail is an object")
    signed = obj["signed_record"]
    if signed is not None and not (
        isinstance(signed, dict)
        and set(signed) == {"body", "sig"}
        and all(isinstance(v, str) for v in signed.values())
    ):
        raise LeafError("signed_record is an envelope {body, sig} or null")
    return Body(**obj)


def check_body(skeleton: Skeleton, body_bytes: bytes) -> Body:
    """The body a skeleton names, parsed strictly and checked against the skeleton."""
    if not isinstance(body_bytes, bytes) or not hmac.compare_digest(
        body_hash(body_bytes), skeleton.body
    ):
        raise LeafError("the body does not match its skeleton")
    body = _parse_body(_parse(body_bytes))
    membership = _membership_hash(body.action, body.result, body.case_id, body.signed_record)
    if membership != skeleton.membership:
        raise LeafError("the skeleton misstates the membership entry of its event")
    expected_tag = case_tag(body.case_id) if membership is not None else None
    if expected_tag != skeleton.case_tag:
        raise LeafError("the skeleton misstates the case of its event")
    return body


def parse_entry_v1(data: bytes) -> dict[str, Any]:
    """Strict parse of a version-1 leaf (history written before format 2), as a record."""
    obj = _parse(data)
    if obj.get("v") != LEAF_VERSION_1 or set(obj) != _V1_KEYS:
        raise LeafError("not a version-1 leaf")
    return obj

