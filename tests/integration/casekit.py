"""Test helpers for the case and file API: real signed records made with real keys.

The server checks signatures, the hash chain and authority, so tests build records the way a
client does (vault.protocol builders + the test user's Ed25519 key). Sealed keys, encrypted
metadata and wrapped keys are random bytes: the server must treat them as opaque.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass, field

from vault.protocol.encoding import b64e
from vault.protocol.ids import new_id
from vault.protocol.membership import membership_entry_body
from vault.protocol.records import (
    LABEL_GRANT,
    LABEL_MANIFEST,
    LABEL_MEMBERSHIP,
    LABEL_TOMBSTONE,
    ZERO_HASH,
    grant_body,
    manifest_body,
    open_envelope,
    sign_record,
    tombstone_body,
    verify_identity_record,
)

PART = 64 * 1024


def fingerprint(user) -> str:
    return verify_identity_record(user.registration["identity"]).fingerprint_hex


def now_s() -> int:
    return int(time.time())


@dataclass
class CaseState:
    case_id: str
    seq: int = 0
    head: str = ZERO_HASH
    generation: int = 0
    members: dict[str, tuple[object, str]] = field(default_factory=dict)


class CaseKit:
    """Drives one TestClient as several users; keeps the case's log head like a client would."""

    def __init__(self, client) -> None:
        self.client = client

    # ------------------------------------------------------------ records

    def grant(self, granter, case: CaseState, member, generation: int | None = None) -> dict:
        body = grant_body(
            case_id=case.case_id,
            generation=case.generation if generation is None else generation,
            member=member.user_id,
            member_fp=fingerprint(member),
            sealed_key=secrets.token_bytes(1200),
            granter=granter.user_id,
            time=now_s(),
        )
        return sign_record(LABEL_GRANT, body, granter.signing_key)

    def entry(self, author, case: CaseState, action: str, subject, role: str, **kw) -> dict:
        body = membership_entry_body(
            case_id=case.case_id,
            seq=kw.pop("seq", case.seq + 1),
            prev_hash=kw.pop("prev_hash", case.head),
            action=action,
            subject=subject.user_id,
            subject_fp=kw.pop("subject_fp", fingerprint(subject)),
            role=role,
            author=author.user_id,
            time=now_s(),
            generation=kw.pop("generation", case.generation),
            key_link=kw.pop("key_link", b""),
        )
        return sign_record(LABEL_MEMBERSHIP, body, kw.pop("key", author.signing_key))

    def _advance(self, case: CaseState, entry: dict, generation: int) -> None:
        env = open_envelope(LABEL_MEMBERSHIP, entry)
        case.seq = env.body["seq"]
        case.head = env.record_hash
        case.generation = generation

    # ------------------------------------------------------------ cases and membership

    def create_case(self, owner, case_id: str | None = None):
        case = CaseState(case_id=case_id or new_id(), seq=-1)
        genesis = self.entry(owner, case, "create", owner, "owner", seq=0, generation=0)
        response = self.client.post(
            "/v1/cases",
            json={
                "case_id": case.case_id,
                "encrypted_info": b64e(secrets.token_bytes(80)),
                "entry": genesis,
                "grant": self.grant(owner, case, owner, generation=0),
            },
            headers=owner.headers,
        )
        assert response.status_code == 201, response.text
        self._advance(case, genesis, 0)
        case.members[owner.user_id] = (owner, "owner")
        return case

    def post_entry(self, actor, case: CaseState, entry: dict, grants: list[dict]):
        return self.client.post(
            f"/v1/cases/{case.case_id}/membership",
            json={"entry": entry, "grants": grants},
            headers=actor.headers,
        )

    def add(self, owner, case: CaseState, member, role: str = "editor"):
        entry = self.entry(owner, case, "add", member, role)
        response = self.post_entry(owner, case, entry, [self.grant(owner, case, member)])
        if response.status_code == 201:
            self._advance(case, entry, case.generation)
            case.members[member.user_id] = (member, role)
        return response

    def remove(self, owner, case: CaseState, member):
        role = case.members[member.user_id][1]
        new_gen = case.generation + 1
        entry = self.entry(
            owner,
            case,
            "remove",
            member,
            role,
            generation=new_gen,
            key_link=secrets.token_bytes(72),
        )
        remaining = [m for uid, (m, _) in case.members.items() if uid != member.user_id]
        grants = [self.grant(owner, case, m, generation=new_gen) for m in remaining]
        response = self.post_entry(owner, case, entry, grants)
        if response.status_code == 201:
            self._advance(case, entry, new_gen)
            del case.members[member.user_id]
        return response

    def change_role(self, owner, case: CaseState, member, role: str):
        entry = self.entry(owner, case, "role", member, role)
        response = self.post_entry(owner, case, entry, [])
        if response.status_code == 201:
            self._advance(case, entry, case.generation)
            case.members[member.user_id] = (member, role)
        return response

    # ------------------------------------------------------------ files

    def manifest(self, user, case: CaseState, file_id: str, version: int, blob: bytes, **kw):
        meta = kw.pop("meta", secrets.token_bytes(200))
        wrapped = kw.pop("wrapped", secrets.token_bytes(72))
        body = manifest_body(
            case_id=kw.pop("case_id", case.case_id),
            file_id=file_id,
            version=version,
            generation=kw.pop("generation", case.generation),
            membership_seq=kw.pop("membership_seq", case.seq),
            blob_size=kw.pop("blob_size", len(blob)),
            blob_sha256=kw.pop("blob_sha256", hashlib.sha256(blob).hexdigest()),
            meta_hash=hashlib.sha256(meta).hexdigest(),
            wrapped_key_hash=hashlib.sha256(wrapped).hexdigest(),
            uploader=user.user_id,
            time=now_s(),
        )
        signed = sign_record(LABEL_MANIFEST, body, kw.pop("key", user.signing_key))
        return {"manifest": signed, "encrypted_metadata": b64e(meta), "wrapped_key": b64e(wrapped)}

    def start_upload(
        self, user, case: CaseState, file_id: str, version: int, size: int, part_size: int = PART
    ):
        return self.client.post(
            f"/v1/cases/{case.case_id}/uploads",
            json={
                "file_id": file_id,
                "version": version,
                "total_size": size,
                "part_size": part_size,
            },
            headers=user.headers,
        )

    def put_part(
        self, user, case: CaseState, upload_id: str, n: int, data: bytes, sha: str | None = None
    ):
        return self.client.put(
            f"/v1/cases/{case.case_id}/uploads/{upload_id}/parts/{n}",
            content=data,
            headers={**user.headers, "X-Part-SHA256": sha or hashlib.sha256(data).hexdigest()},
        )

    def complete(self, user, case: CaseState, upload_id: str, completion: dict):
        return self.client.post(
            f"/v1/cases/{case.case_id}/uploads/{upload_id}/complete",
            json=completion,
            headers=user.headers,
        )

    def upload(
        self,
        user,
        case: CaseState,
        blob: bytes,
        *,
        file_id: str | None = None,
        version: int = 1,
        part_size: int = PART,
    ):
        """A whole upload; returns (file_id, completion response)."""
        file_id = file_id or new_id()
        r = self.start_upload(user, case, file_id, version, len(blob), part_size)
        assert r.status_code == 201, r.text
        upload_id = r.json()["upload_id"]
        for n in range(r.json()["part_count"]):
            part = self.put_part(
                user, case, upload_id, n, blob[n * part_size : (n + 1) * part_size]
            )
            assert part.status_code == 200, part.text
        done = self.complete(
            user, case, upload_id, self.manifest(user, case, file_id, version, blob)
        )
        return file_id, done

    def tombstone(self, user, case: CaseState, file_id: str, **kw) -> dict:
        body = tombstone_body(
            case_id=case.case_id,
            file_id=file_id,
            membership_seq=kw.pop("membership_seq", case.seq),
            deleter=user.user_id,
            time=now_s(),
        )
        return sign_record(LABEL_TOMBSTONE, body, kw.pop("key", user.signing_key))

    def download(self, user, case: CaseState, file_id: str, version: int = 1, **headers):
        return self.client.get(
            f"/v1/cases/{case.case_id}/files/{file_id}/versions/{version}/blob",
            headers={**user.headers, **headers},
        )
