"""Cases on the client: the membership log is replayed and verified here, never taken on trust.

Every operation starts from `CaseOps.load`: fetch the signed log, check every key against the
pinned ones, replay it (signatures, hash chain, owner authority), compare it with the head this
client saw last (so a server cannot roll membership back), then open our grant and walk the
generation links down to generation 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from client import crypto
from client.api import field
from client.auditlog import audit_failure
from client.errors import AuditVerificationError, NotAMember, NotFound, VaultError
from client.revocation import RevocationScan, save_evidence
from client.session import Session
from client.trust import VERIFIED, confirm_people
from vault.protocol.encoding import EncodingError, b64d, b64e
from vault.protocol.events import Action
from vault.protocol.ids import is_valid_id, new_id
from vault.protocol.membership import (
    Member,
    MembershipState,
    membership_entry_body,
    replay_membership,
)
from vault.protocol.records import (
    LABEL_MEMBERSHIP,
    ZERO_HASH,
    IdentityRecord,
    RecordError,
    open_envelope,
    parse_grant,
)


@dataclass
class CaseContext:
    case_id: str
    state: MembershipState
    identities: dict[str, IdentityRecord]
    keys: dict[int, bytes]  # generation -> case key
    me: str
    encrypted_info: str | None = None

    @property
    def generation(self) -> int:
        return self.state.generation

    @property
    def key(self) -> bytes:
        return self.keys[self.state.generation]

    def username(self, user_id: str) -> str:
        record = self.identities.get(user_id)
        return record.username if record else user_id

    def role(self) -> str:
        role = self.state.role_of(self.me)
        if role is None:
            raise NotAMember(self.case_id)
        return role


def iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_case_id(case_id: str) -> str:
    if not is_valid_id(case_id):
        raise VaultError(f"{case_id!r} is not a case id (32 hex digits)")
    return case_id


class CaseOps:
    """Cases and their members, over a Session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    # ------------------------------------------------------------ audit log

    def receipt(self, index: Any, *, expect: dict[str, Any],
                detail: dict[str, Any] | None = None) -> None:
        """Prove our own action is in the log as we did it, and keep the receipt."""
        expect = {"actor_id": self.session.identity().user_id, **expect}
        try:
            self.session.audit_log().fetch_receipt(index, expect=expect, expect_detail=detail)
        except AuditVerificationError as exc:
            raise audit_failure(exc, f"entry of your {expect.get('action')}") from exc

    def _check_sharer_checkpoint(self, case_id: str, state: MembershipState, me: str) -> None:
        """Once per case: the checkpoint the sharer logged with our addition must be one
        history with ours (client.auditlog.check_sharer_checkpoint); a creator has none."""
        joined = [e for e in state.entries if e.subject == me and e.action in ("create", "add")]
        if not joined or joined[-1].action != "add":
            return
        try:
            self.session.audit_log().check_sharer_checkpoint(case_id, member_id=me,
                                                             added_seq=joined[-1].seq)
        except AuditVerificationError as exc:
            raise audit_failure(exc, f"of case {case_id}") from exc

    # ------------------------------------------------------------ loading and verifying

    def load(self, case_id: str, *, claimed_head: tuple[Any, Any] | None = None) -> CaseContext:
        """Fetch, verify and replay the case's log, then open our grants.

        `claimed_head` (the server's (seq, hash) from the case listing) lets `case list` reuse
        the log and grants this client verified earlier when the head is unchanged; they are
        replayed and opened again here, so only the fetch is saved. A server that claims an
        old head is withholding newer entries, which it can always do; it cannot make the
        client accept anything it did not verify.
        """
        identity = self.session.identity()
        own = identity.record()
        cached = self.session.keystore.load_case_cache(case_id)
        if (cached is not None and claimed_head is not None
                and (cached["seq"], cached["head"]) == tuple(claimed_head)):
            entries, names, grants = cached["entries"], cached["usernames"], cached["grants"]
        else:
            try:
                log = self.session.api.membership(check_case_id(case_id))
            except NotFound as exc:
                self.session.keystore.drop_case_cache(case_id)
                raise NotAMember(case_id) from exc
            entries, names, grants = log.get("entries"), log.get("usernames"), None
            if not isinstance(entries, list) or not isinstance(names, dict):
                raise crypto.IntegrityError(f"membership log of case {case_id}")
            names = {str(k): str(v) for k, v in names.items()}
        identities = self.session.trust.identities(names, own)
        try:
            state = replay_membership(entries, identities)
        except (RecordError, EncodingError) as exc:
            raise crypto.IntegrityError(f"membership log of case {case_id}") from exc
        if state.case_id != case_id:
            raise crypto.IntegrityError(f"membership log of case {case_id}")
        self._check_not_rolled_back(case_id, state)
        if state.role_of(identity.user_id) is None:
            raise NotAMember(case_id)
        if grants is None:
            grants = field(self.session.api.grants(case_id), "grants")
            if not isinstance(grants, list):
                raise crypto.IntegrityError(f"key grants of case {case_id}")
        keys = self._open_keys(case_id, state, identities, grants)
        self.session.keystore.save_case_cache(case_id, {
            "seq": state.entries[-1].seq, "head": state.head_hash, "entries": entries,
            "usernames": names, "grants": grants})
        self._check_sharer_checkpoint(case_id, state, identity.user_id)
        return CaseContext(case_id, state, identities, keys, identity.user_id)

    def _check_not_rolled_back(self, case_id: str, state: MembershipState) -> None:
        """The log must extend the head this client saw last and hold the last entry it
        appended itself (a log served as it was before our own revocation is refused even if
        this client never loaded the case after revoking); then remember the new head."""
        keystore = self.session.keystore
        for what, known in (("the last entry seen", keystore.load_case_head(case_id)),
                            ("our own last entry", keystore.load_own_entry(case_id))):
            if known is None:
                continue
            seq, head = known
            if seq >= len(state.entries) or state.entries[seq].entry_hash != head:
                served = "\n".join(f"{e.seq} {e.entry_hash} {e.action}" for e in state.entries)
                where = save_evidence(keystore, "membership-rollback", (
                    f"the membership log of case {case_id} lacks {what}"), [
                    (f"{what} (seq, entry hash)", f"{seq} {head}"),
                    ("log served (seq, entry hash, action)", served)])
                raise crypto.IntegrityError(
                    f"membership log of case {case_id} (the server rolled it back or forked it;"
                    f" evidence saved to {where})")
        keystore.save_case_head(case_id, state.entries[-1].seq, state.head_hash)

    def load_for_encryption(self, case_id: str) -> CaseContext:
        """`load`, then the revocation scan (client.revocation): the context returned has the
        newest head and generation the audit log proves, or the client refuses (exit 3)."""
        ctx = self.load(case_id)
        return RevocationScan(self.session).check(ctx, lambda: self.load(case_id))

    def _open_keys(self, case_id: str, state: MembershipState,
                   identities: dict[str, IdentityRecord], grants: list[Any]) -> dict[int, bytes]:
        identity = self.session.identity()
        keys: dict[int, bytes] = {}
        for signed in grants:
            key = crypto.open_grant(signed, identity=identity, state=state, identities=identities)
            body_gen = _grant_generation(signed)
            keys[body_gen] = key
        if state.generation not in keys:
            raise crypto.IntegrityError(f"key grant of case {case_id} for the current generation")
        # Older generations come from the links in the log: generation g carries g-1.
        links = {e.generation: e.key_link for e in state.entries if e.action == "remove"}
        for gen in range(state.generation, 0, -1):
            if gen - 1 in keys:
                continue
            if gen not in keys or gen not in links:
                break
            keys[gen - 1] = crypto.open_key_link(links[gen], new_key=keys[gen], case_id=case_id,
                                                 new_generation=gen)
        return keys

    # ------------------------------------------------------------ operations

    def create(self, name: str, description: str = "") -> str:
        if not name.strip():
            raise VaultError("a case needs a name")
        identity = self.session.identity()
        record = identity.record()
        case_id = new_id()
        key = crypto.new_case_key()
        body = membership_entry_body(
            case_id=case_id, seq=0, prev_hash=ZERO_HASH, action="create",
            subject=identity.user_id, subject_fp=record.fingerprint_hex, role="owner",
            author=identity.user_id, time=self.session.now(), generation=0)
        entry = identity.sign(LABEL_MEMBERSHIP, body)
        grant = crypto.seal_grant(case_key=key, case_id=case_id, generation=0, member=record,
                                  granter=identity)
        info = crypto.encrypt_case_metadata(crypto.CaseMetadata(name, description),
                                            case_key=key, case_id=case_id, generation=0)
        reply = self.session.api.create_case({
            "case_id": case_id, "encrypted_info": b64e(info), "entry": entry, "grant": grant})
        self.session.keystore.save_own_entry(case_id, 0, open_envelope(LABEL_MEMBERSHIP,
                                                                       entry).record_hash)
        self.receipt(field(reply, "log_index"), expect={"action": Action.CASE_CREATED,
                                                        "case_id": case_id,
                                                        "signed_record": entry})
        return case_id

    def case_name(self, ctx: CaseContext, encrypted_info: Any) -> str:
        if 0 not in ctx.keys:
            return "(name unreadable: older keys unavailable)"
        if not isinstance(encrypted_info, str):
            raise crypto.IntegrityError(f"name of case {ctx.case_id}")
        try:
            meta = crypto.decrypt_case_metadata(b64d(encrypted_info), case_key=ctx.keys[0],
                                                case_id=ctx.case_id, generation=0)
        except EncodingError as exc:
            raise crypto.IntegrityError(f"name of case {ctx.case_id}") from exc
        return meta.name

    def list(self) -> list[dict[str, Any]]:
        """Cases with names and roles from the verified log: one request for the listing,
        plus the log and grants of each case whose head moved since this client last saw it."""
        cases = field(self.session.api.list_cases(), "cases")
        if not isinstance(cases, list):
            raise crypto.IntegrityError("list of cases")
        out = []
        for case in cases:
            if not isinstance(case, dict) or not is_valid_id(case.get("case_id")):
                raise crypto.IntegrityError("list of cases")
            try:
                ctx = self.load(case["case_id"], claimed_head=(
                    case.get("membership_seq"), case.get("membership_head")))
            except NotAMember:
                continue  # removed since the listing, or listed by a server that is wrong
            hold = ctx.state.hold  # from our replay of the log, not from the listing
            out.append({"case_id": ctx.case_id,
                        "name": self.case_name(ctx, case.get("encrypted_info")),
                        "role": ctx.role(), "hold": hold.reason if hold else None})
        return out

    def members(self, case_id: str) -> list[dict[str, Any]]:
        ctx = self.load(case_id)
        rows = [{"username": ctx.username(m.user_id), "role": m.role,
                 "trust": self.session.trust.trust_state(m.user_id, ctx.me)}
                for m in ctx.state.members.values()]
        return sorted(rows, key=lambda r: r["username"])

    def _append(self, ctx: CaseContext, *, action: str, subject: str, subject_fp: str,
                role: str, generation: int, key_link: bytes, grants: list[dict],
                checkpoint: str | None = None) -> tuple[Any, dict[str, str]]:
        """Sign and send one membership entry; (its log index, the signed entry). The receipt
        must carry exactly that entry: its leaf then names it for co-owners' scans."""
        identity = self.session.identity()
        last_time = ctx.state.entries[-1].time
        body = membership_entry_body(
            case_id=ctx.case_id, seq=ctx.state.next_seq, prev_hash=ctx.state.head_hash,
            action=action, subject=subject, subject_fp=subject_fp, role=role,
            author=identity.user_id, time=max(self.session.now(), last_time),
            generation=generation, key_link=key_link)
        entry = identity.sign(LABEL_MEMBERSHIP, body)
        request = {"entry": entry, "grants": grants}
        if checkpoint is not None:
            request["checkpoint"] = checkpoint
        reply = self.session.api.append_membership(check_case_id(ctx.case_id), request)
        # Accepted: from now on every log of this case must hold this entry (no rollback to
        # before our own revocation), whether or not the receipt check below completes.
        own_hash = open_envelope(LABEL_MEMBERSHIP, entry).record_hash
        self.session.keystore.save_own_entry(ctx.case_id, body["seq"], own_hash)
        self.session.keystore.save_case_head(ctx.case_id, body["seq"], own_hash)
        return field(reply, "log_index"), entry

    def share(self, case_id: str, username: str, *, role: str,
              fingerprint: str | None) -> dict[str, Any]:
        ctx = self.load_for_encryption(case_id)
        if ctx.role() != "owner":
            raise VaultError("only an owner of the case can share it")
        record, first_seen, verified = self.session.trust.for_sharing(username, fingerprint)
        if record.user_id in ctx.state.members:
            raise VaultError(f"{username} is already a member of this case")
        trust = self.session.trust.trust_state(record.user_id, ctx.me)
        if trust != VERIFIED:
            # Before the case key is sealed to a key nobody compared.
            confirm_people(self.session, [{"username": username, "trust": trust,
                                           "safety_number": record.safety_number,
                                           "fingerprint": record.fingerprint_hex}],
                           f"sharing case {case_id} with {username}")
        grant = crypto.seal_grant(case_key=ctx.key, case_id=case_id, generation=ctx.generation,
                                  member=record, granter=self.session.identity())
        log = self.session.audit_log()
        try:
            log.refresh()  # our latest verified checkpoint travels with the share
            checkpoint = log.pinned()[1]  # type: ignore[index]
        except AuditVerificationError as exc:
            raise audit_failure(exc, f"of case {case_id}") from exc
        index, entry = self._append(ctx, action="add", subject=record.user_id,
                                    subject_fp=record.fingerprint_hex, role=role,
                                    generation=ctx.generation, key_link=b"", grants=[grant],
                                    checkpoint=checkpoint)
        self.receipt(index, expect={"action": Action.MEMBER_ADDED, "case_id": case_id,
                                    "signed_record": entry},
                     detail={"subject": record.user_id, "sharer_checkpoint": checkpoint})
        return {"case_id": case_id, "username": username, "role": role,
                "safety_number": record.safety_number, "first_seen": first_seen,
                "verified": verified, "trust": trust}

    def revoke(self, case_id: str, username: str) -> dict[str, Any]:
        ctx = self.load_for_encryption(case_id)
        if ctx.role() != "owner":
            raise VaultError("only an owner of the case can remove members")
        target: Member | None = next(
            (m for m in ctx.state.members.values() if ctx.username(m.user_id) == username), None)
        if target is None:
            raise VaultError(f"{username} is not a member of this case")
        new_gen = ctx.generation + 1
        new_key = crypto.new_case_key()
        link = crypto.make_key_link(new_key=new_key, old_key=ctx.key, case_id=case_id,
                                    new_generation=new_gen)
        identity = self.session.identity()
        grants = [
            crypto.seal_grant(case_key=new_key, case_id=case_id, generation=new_gen,
                              member=ctx.identities[m.user_id], granter=identity)
            for m in ctx.state.members.values() if m.user_id != target.user_id
        ]
        index, entry = self._append(ctx, action="remove", subject=target.user_id,
                                    subject_fp=target.fingerprint, role=target.role,
                                    generation=new_gen, key_link=link, grants=grants)
        self.receipt(index, expect={"action": Action.MEMBER_REMOVED, "case_id": case_id,
                                    "signed_record": entry},
                     detail={"subject": target.user_id})
        return {"case_id": case_id, "username": username, "generation": new_gen}

    def set_role(self, case_id: str, username: str, role: str) -> dict[str, Any]:
        """Change a member's role (a signed `role` entry; the case key stays the same)."""
        ctx = self.load(case_id)
        if ctx.role() != "owner":
            raise VaultError("only an owner of the case can change roles")
        target: Member | None = next(
            (m for m in ctx.state.members.values() if ctx.username(m.user_id) == username), None)
        if target is None:
            raise VaultError(f"{username} is not a member of this case")
        if target.role == role:
            raise VaultError(f"{username} is already {role} of this case")
        index, entry = self._append(ctx, action="role", subject=target.user_id,
                                    subject_fp=target.fingerprint, role=role,
                                    generation=ctx.generation, key_link=b"", grants=[])
        self.receipt(index, expect={"action": Action.MEMBER_ROLE_CHANGED, "case_id": case_id,
                                    "signed_record": entry},
                     detail={"subject": target.user_id})
        return {"case_id": case_id, "username": username, "role": role}

    def verify_log(self) -> dict[str, Any]:
        """The whole chain: the pin advanced by a consistency proof, every receipt re-proven."""
        try:
            return self.session.audit_log().verify_all()
        except AuditVerificationError as exc:
            raise audit_failure(exc, "and your receipts") from exc


def _grant_generation(signed: Any) -> int:
    try:
        return parse_grant(signed).generation
    except RecordError as exc:
        raise crypto.IntegrityError("key grant") from exc
