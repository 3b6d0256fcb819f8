"""The signed, hash-chained membership log of a case and the authority checks built on it.

The server replays the log to validate an append; the client replays it to check the server.
Both call the same code, so both enforce the same rules. Every failure is a RecordError.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from vault.protocol.encoding import FORMAT_VERSION, b64d, b64e
from vault.protocol.records import (
    HOLD_ACTIONS,
    LABEL_MEMBERSHIP,
    UPLOAD_ROLES,
    ZERO_HASH,
    Grant,
    IdentityRecord,
    Manifest,
    RecordError,
    Signed,
    Tombstone,
    _check_fields,
    open_envelope,
    parse_grant,
    parse_manifest,
    parse_tombstone,
    verify_signature,
)


@dataclass(frozen=True)
class Member:
    user_id: str
    role: str
    fingerprint: str  # hex SHA-256 of the identity record pinned when the member was added


@dataclass(frozen=True)
class MembershipEntry:
    case_id: str
    seq: int
    prev_hash: str
    action: str
    subject: str
    subject_fp: str
    role: str
    author: str
    time: int
    generation: int
    key_link: bytes
    entry_hash: str
    signed: dict[str, str]
    reason: str | None = None  # set on hold entries only


@dataclass(frozen=True)
class Hold:
    """A legal hold in force: placed by an owner's signed entry at `seq`."""

    reason: str
    seq: int
    author: str
    time: int


@dataclass(frozen=True)
class Snapshot:
    """Who was a member, with which role, the key generation and any legal hold, right after
    one entry."""

    seq: int
    generation: int
    members: Mapping[str, Member]
    hold: Hold | None = None


@dataclass(frozen=True)
class MembershipState:
    case_id: str
    entries: tuple[MembershipEntry, ...]
    snapshots: tuple[Snapshot, ...] = field(repr=False)

    @property
    def head(self) -> Snapshot:
        return self.snapshots[-1]

    @property
    def members(self) -> Mapping[str, Member]:
        return self.head.members

    @property
    def generation(self) -> int:
        return self.head.generation

    @property
    def hold(self) -> Hold | None:
        """The legal hold standing at the head of the log, if any."""
        return self.head.hold

    @property
    def head_hash(self) -> str:
        return self.entries[-1].entry_hash

    @property
    def next_seq(self) -> int:
        return len(self.entries)

    def role_of(self, user_id: str) -> str | None:
        member = self.members.get(user_id)
        return member.role if member else None

    def may_upload(self, user_id: str) -> bool:
        return self.role_of(user_id) in UPLOAD_ROLES

    def may_grant(self, user_id: str) -> bool:
        return self.role_of(user_id) == "owner"

    def at(self, seq: int) -> Snapshot:
        if not 0 <= seq < len(self.snapshots):
            raise RecordError("membership position does not exist")
        return self.snapshots[seq]


def membership_entry_body(
    *,
    case_id: str,
    seq: int,
    prev_hash: str,
    action: str,
    subject: str,
    subject_fp: str,
    role: str,
    author: str,
    time: int,
    generation: int,
    key_link: bytes = b"",
    reason: str | None = None,
) -> dict[str, Any]:
    """The body of one entry; `reason` is given for (and only for) a hold entry."""
    body = {
        "v": FORMAT_VERSION,
        "case_id": case_id,
        "seq": seq,
        "prev_hash": prev_hash,
        "action": action,
        "subject": subject,
        "subject_fp": subject_fp,
        "role": role,
        "author": author,
        "time": time,
        "generation": generation,
        "key_link": b64e(key_link),
    }
    if reason is not None:
        body["reason"] = reason
    _check_fields(LABEL_MEMBERSHIP, body)
    return body


def _entry(env: Signed) -> MembershipEntry:
    b = env.body
    return MembershipEntry(
        case_id=b["case_id"],
        seq=b["seq"],
        prev_hash=b["prev_hash"],
        action=b["action"],
        subject=b["subject"],
        subject_fp=b["subject_fp"],
        role=b["role"],
        author=b["author"],
        time=b["time"],
        generation=b["generation"],
        key_link=b64d(b["key_link"]),
        entry_hash=env.record_hash,
        signed=env.to_json(),
        reason=b.get("reason"),
    )


def _identity(identities: Mapping[str, IdentityRecord], user_id: str) -> IdentityRecord:
    ident = identities.get(user_id)
    if ident is None or ident.user_id != user_id:
        raise RecordError("no identity for a user named in the membership log")
    return ident


def _apply(
    prev: Snapshot | None, e: MembershipEntry, identities: Mapping[str, IdentityRecord]
) -> Snapshot:
    if prev is None:
        if e.action != "create" or e.seq != 0 or e.prev_hash != ZERO_HASH:
            raise RecordError("a membership log starts with one create entry")
        if e.subject != e.author or e.role != "owner" or e.generation != 0 or e.key_link:
            raise RecordError("the create entry makes its author the owner at generation 0")
        if e.subject_fp != _identity(identities, e.subject).fingerprint_hex:
            raise RecordError("membership entry names the wrong key for its subject")
        return Snapshot(0, 0, {e.subject: Member(e.subject, "owner", e.subject_fp)})

    members = dict(prev.members)
    author = members.get(e.author)
    if author is None or author.role != "owner":
        raise RecordError("only an owner may change membership")
    if author.fingerprint != _identity(identities, e.author).fingerprint_hex:
        raise RecordError("membership entry signed by a key other than the one pinned")
    current = members.get(e.subject)
    generation = prev.generation
    hold = prev.hold
    if e.action == "create":
        raise RecordError("create may only be the first entry")
    if e.action in HOLD_ACTIONS:
        # The owner signs for the case, not about a member: subject, key and role are the
        # author's own, so the entry has one reading and the existing fields keep their types.
        if e.subject != e.author or e.subject_fp != author.fingerprint or e.role != "owner":
            raise RecordError("a hold or release entry names its author as subject, as owner")
        if e.action == "hold":
            if hold is not None:
                raise RecordError("a hold already stands")
            hold = Hold(e.reason or "", e.seq, e.author, e.time)
        else:
            if hold is None:
                raise RecordError("no hold stands to release")
            hold = None
    elif e.action == "add":
        if current is not None:
            raise RecordError("subject is already a member")
        if e.subject_fp != _identity(identities, e.subject).fingerprint_hex:
            raise RecordError("membership entry names the wrong key for its subject")
        members[e.subject] = Member(e.subject, e.role, e.subject_fp)
    else:
        if current is None:
            raise RecordError("subject is not a member")
        if e.subject_fp != current.fingerprint:
            raise RecordError("membership entry names the wrong key for its subject")
        if e.action == "remove":
            if e.role != current.role:
                raise RecordError("a remove entry repeats the subject's current role")
            del members[e.subject]
            # Removal rotates the case key so the removed member cannot read new files.
            generation += 1
        else:  # role
            if e.role == current.role:
                raise RecordError("a role entry must change the role")
            members[e.subject] = Member(e.subject, e.role, current.fingerprint)
    if not any(m.role == "owner" for m in members.values()):
        raise RecordError("a case must keep at least one owner")
    if e.generation != generation:
        raise RecordError("membership entry has the wrong key generation")
    if bool(e.key_link) != (e.action == "remove"):
        raise RecordError("a key link comes with, and only with, a remove entry")
    return Snapshot(e.seq, generation, members, hold)


def replay_membership(
    entries: Sequence[Any], identities_by_user_id: Mapping[str, IdentityRecord]
) -> MembershipState:
    """Verify every signature, the hash chain and the authority rules; return the final state.

    `entries` are signed envelopes in log order; `identities_by_user_id` holds verified identity
    records (pinned by the client) of every author and subject.
    """
    if not entries:
        raise RecordError("a membership log has at least one entry")
    parsed: list[MembershipEntry] = []
    snapshots: list[Snapshot] = []
    prev_snap: Snapshot | None = None
    prev_entry: MembershipEntry | None = None
    for index, signed in enumerate(entries):
        env = open_envelope(LABEL_MEMBERSHIP, signed)
        e = _entry(env)
        if e.seq != index:
            raise RecordError("membership log has a gap or is out of order")
        if prev_entry is not None:
            if e.case_id != prev_entry.case_id:
                raise RecordError("membership entry belongs to another case")
            if e.prev_hash != prev_entry.entry_hash:
                raise RecordError("membership hash chain is broken")
            if e.time < prev_entry.time:
                raise RecordError("membership entry goes back in time")
        verify_signature(env, _identity(identities_by_user_id, e.author).sign_pk)
        prev_snap = _apply(prev_snap, e, identities_by_user_id)
        parsed.append(e)
        snapshots.append(prev_snap)
        prev_entry = e
    return MembershipState(parsed[0].case_id, tuple(parsed), tuple(snapshots))


def verify_membership_append(
    state: MembershipState, signed: Any, identities_by_user_id: Mapping[str, IdentityRecord]
) -> MembershipState:
    """Check one new entry against an already replayed state (the server's append path)."""
    return replay_membership([e.signed for e in state.entries] + [signed], identities_by_user_id)


def _signer_matches(snap: Snapshot, user_id: str, ident: IdentityRecord) -> bool:
    member = snap.members.get(user_id)
    return member is not None and member.fingerprint == ident.fingerprint_hex


def verify_grant(
    signed: Any, state: MembershipState, identities_by_user_id: Mapping[str, IdentityRecord]
) -> Grant:
    """A grant is valid when, at some point of the log at its generation, the granter was an
    owner and the member was a member, both with the keys the grant and log name."""
    grant = parse_grant(signed)
    if grant.case_id != state.case_id:
        raise RecordError("grant belongs to another case")
    granter = _identity(identities_by_user_id, grant.granter)
    verify_signature(open_envelope("cv1/grant", signed), granter.sign_pk)
    for snap in state.snapshots:
        if snap.generation != grant.generation:
            continue
        g = snap.members.get(grant.granter)
        m = snap.members.get(grant.member)
        if (
            g is not None
            and g.role == "owner"
            and g.fingerprint == granter.fingerprint_hex
            and m is not None
            and m.fingerprint == grant.member_fp
        ):
            return grant
    raise RecordError("grant not issued by an owner to a member at that generation")


def verify_manifest(
    signed: Any,
    state: MembershipState,
    identities_by_user_id: Mapping[str, IdentityRecord],
    *,
    case_id: str | None = None,
    file_id: str | None = None,
    version: int | None = None,
) -> Manifest:
    """Signature by the uploader's pinned key, upload rights and the key generation at the
    membership position the manifest names, and (when given) the expected coordinates."""
    manifest = parse_manifest(signed)
    expected = {"case_id": case_id, "file_id": file_id, "version": version}
    for name, want in expected.items():
        if want is not None and getattr(manifest, name) != want:
            raise RecordError(f"manifest names another {name}")
    if manifest.case_id != state.case_id:
        raise RecordError("manifest belongs to another case")
    uploader = _identity(identities_by_user_id, manifest.uploader)
    verify_signature(open_envelope("cv1/manifest", signed), uploader.sign_pk)
    snap = state.at(manifest.membership_seq)
    if not _signer_matches(snap, manifest.uploader, uploader):
        raise RecordError("manifest uploader was not a member")
    if snap.members[manifest.uploader].role not in UPLOAD_ROLES:
        raise RecordError("manifest uploader had no upload rights")
    if manifest.generation != snap.generation:
        raise RecordError("manifest uses a key generation other than the current one")
    return manifest


def verify_tombstone(
    signed: Any, state: MembershipState, identities_by_user_id: Mapping[str, IdentityRecord]
) -> Tombstone:
    tomb = parse_tombstone(signed)
    if tomb.case_id != state.case_id:
        raise RecordError("tombstone belongs to another case")
    deleter = _identity(identities_by_user_id, tomb.deleter)
    verify_signature(open_envelope("cv1/tombstone", signed), deleter.sign_pk)
    snap = state.at(tomb.membership_seq)
    if not _signer_matches(snap, tomb.deleter, deleter):
        raise RecordError("tombstone signer was not a member")
    if snap.members[tomb.deleter].role not in UPLOAD_ROLES:
        raise RecordError("tombstone signer had no delete rights")
    if snap.hold is not None:
        raise RecordError("tombstone signed while a legal hold stood")
    return tomb
