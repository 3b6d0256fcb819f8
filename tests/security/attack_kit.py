"""Helpers of the adversarial suite: real identities and a real signed membership log.

Nothing here fakes the component under test: identities are the client's real `Identity`
objects, membership entries are signed with their keys and replayed with the same
`replay_membership` that the client and the server run.
"""

from __future__ import annotations

import base64
import hashlib
import io
import itertools
from dataclasses import dataclass, field

import sqlalchemy as sa

from client.cases import CaseOps
from client.crypto import _aead
from client.crypto import seal as _seal
from client.crypto.keys import Identity
from client.crypto.seal import (
    LABEL_FILE_META,
    FileMetadata,
    encrypt_file_metadata,
    file_metadata_body,
    make_key_link,
    new_case_key,
    new_file_key,
    wrap_file_key,
)
from client.crypto.stream import decrypt_to_path, encrypt_stream
from vault.protocol.encoding import b64d, b64e, canonical_json, parse_canonical
from vault.protocol.ids import new_id
from vault.protocol.membership import (
    MembershipState,
    membership_entry_body,
    replay_membership,
)
from vault.protocol.records import (
    LABEL_MANIFEST,
    LABEL_MEMBERSHIP,
    ZERO_HASH,
    IdentityRecord,
    manifest_body,
)

PASSPHRASE = "correct horse battery staple"


def make_identity(username: str) -> Identity:
    return Identity.generate(new_id(), username, now=1_700_000_000)


@dataclass
class CaseLog:
    """A case's signed membership log, built entry by entry the way an owner's client does."""

    owner: Identity
    case_id: str = field(default_factory=new_id)
    entries: list[dict] = field(default_factory=list)
    identities: dict[str, IdentityRecord] = field(default_factory=dict)
    keys: list[bytes] = field(default_factory=list)  # case key per generation
    _clock: itertools.count = field(default_factory=lambda: itertools.count(1_700_000_100))

    def __post_init__(self) -> None:
        self.know(self.owner)
        self.keys.append(new_case_key())
        self._append(self.owner, "create", self.owner, "owner", 0)

    def know(self, *people: Identity) -> None:
        for person in people:
            self.identities[person.user_id] = person.record()

    def state(self) -> MembershipState:
        return replay_membership(self.entries, self.identities)

    def _append(
        self,
        author: Identity,
        action: str,
        subject: Identity,
        role: str,
        generation: int,
        key_link: bytes = b"",
    ) -> dict:
        prev = ZERO_HASH if not self.entries else self.state().head_hash
        body = membership_entry_body(
            case_id=self.case_id,
            seq=len(self.entries),
            prev_hash=prev,
            action=action,
            subject=subject.user_id,
            subject_fp=subject.record().fingerprint_hex,
            role=role,
            author=author.user_id,
            time=next(self._clock),
            generation=generation,
            key_link=key_link,
        )
        signed = author.sign(LABEL_MEMBERSHIP, body)
        self.entries.append(signed)
        return signed

    def add(self, subject: Identity, role: str, *, author: Identity | None = None) -> dict:
        self.know(subject)
        return self._append(author or self.owner, "add", subject, role, len(self.keys) - 1)

    def set_role(self, subject: Identity, role: str) -> dict:
        return self._append(self.owner, "role", subject, role, len(self.keys) - 1)

    def remove(self, subject: Identity) -> dict:
        role = self.state().role_of(subject.user_id)
        new_key = new_case_key()
        generation = len(self.keys)
        link = make_key_link(
            new_key=new_key, old_key=self.keys[-1], case_id=self.case_id, new_generation=generation
        )
        self.keys.append(new_key)
        return self._append(self.owner, "remove", subject, role, generation, link)


def body_of(signed: dict) -> dict:
    """The body of a signed envelope."""
    return parse_canonical(b64d(signed["body"]))


def tampered(signed: dict, **changes) -> dict:
    """The same envelope with fields of its body changed and the original signature kept."""
    return {"body": b64e(canonical_json({**body_of(signed), **changes})), "sig": signed["sig"]}


def resigned(signed: dict, label: str, signer: Identity, **changes) -> dict:
    """The envelope with fields changed and signed again, by whoever the attacker controls."""
    return signer.sign(label, {**body_of(signed), **changes})


# ---------------------------------------------------------------- encrypted files


@dataclass
class SealedFile:
    """One encrypted file version, exactly as an uploader's client produces it."""

    case_id: str
    file_id: str
    version: int
    file_key: bytes
    plaintext: bytes
    blob: bytes
    meta: bytes
    plaintext_sha256: str


def seal_file(
    plaintext: bytes,
    *,
    case_id: str | None = None,
    file_id: str | None = None,
    version: int = 1,
    file_key: bytes | None = None,
    name: str = "statement.txt",
) -> SealedFile:
    case_id = case_id or new_id()
    file_id = file_id or new_id()
    file_key = file_key or new_file_key()
    out = io.BytesIO()
    result = encrypt_stream(
        io.BytesIO(plaintext), out, file_key, case_id=case_id, file_id=file_id, version=version
    )
    meta = encrypt_file_metadata(
        FileMetadata(name=name, size=len(plaintext), sha256=result.plaintext_sha256),
        file_key=file_key,
        case_id=case_id,
        file_id=file_id,
        version=version,
    )
    return SealedFile(
        case_id,
        file_id,
        version,
        file_key,
        plaintext,
        out.getvalue(),
        meta,
        result.plaintext_sha256,
    )


def open_blob(
    sealed: SealedFile,
    blob: bytes,
    dest,
    *,
    case_id: str | None = None,
    file_id: str | None = None,
    version: int | None = None,
):
    """Decrypt `blob` to `dest` as a downloading client does for `sealed`'s coordinates."""
    return decrypt_to_path(
        io.BytesIO(blob),
        dest,
        sealed.file_key,
        case_id=case_id or sealed.case_id,
        file_id=file_id or sealed.file_id,
        version=version or sealed.version,
        plaintext_size=len(sealed.plaintext),
        expected_sha256=sealed.plaintext_sha256,
    )


# ---------------------------------------------------------------- the seized server


def dump_database(url: str) -> str:
    """Every row of every table as text: what someone imaging the database can read."""
    engine = sa.create_engine(url)
    try:
        meta = sa.MetaData()
        meta.reflect(bind=engine)
        out = []
        with engine.connect() as conn:
            for table in meta.sorted_tables:
                for row in conn.execute(sa.select(table)):
                    for value in row:
                        if isinstance(value, bytes | bytearray | memoryview):
                            value = bytes(value)
                            out.append(value.hex())
                            out.append(value.decode("latin-1"))
                        else:
                            out.append(str(value))
        return "\n".join(out)
    finally:
        engine.dispose()


def encodings_of(secret: bytes | str) -> list[str]:
    """The ways a secret could sit in a database: raw, hex, base64 (both alphabets), base32."""
    raw = secret.encode() if isinstance(secret, str) else secret
    forms = {
        raw.decode("latin-1"),
        raw.hex(),
        base64.b64encode(raw).decode().rstrip("="),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
        base64.b32encode(raw).decode().rstrip("="),
    }
    return sorted(f for f in forms if len(f) >= 12)


class CallCounter:
    """Wraps a real method and counts calls (a spy over the real thing, not a replacement)."""

    def __init__(self, target: object, name: str) -> None:
        self.calls = 0
        real = getattr(target, name)

        def counted(*args, **kwargs):
            self.calls += 1
            return real(*args, **kwargs)

        setattr(target, name, counted)


def run_sql(url: str, statement: str, params: dict | None = None) -> list[tuple]:
    """SQL on the server's database, as the operator (or whoever holds the disk) would run it."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            result = conn.execute(sa.text(statement), params or {})
            return [tuple(r) for r in result] if result.returns_rows else []
    finally:
        engine.dispose()


def all_file_bytes(root) -> bytes:
    """Every byte of every file under a folder (a disk image, as far as a test can take one)."""
    from pathlib import Path

    return b"\n".join(p.read_bytes() for p in sorted(Path(root).rglob("*")) if p.is_file())


# ---------------------------------------------------------------- the log-rewriting operator


def log_entries(url: str) -> list[tuple[bytes, int, str | None, str | None, bytes | None]]:
    """The audit log's leaves as stored: (entry bytes, event id, case id, actor id, body)."""
    rows = run_sql(
        url,
        "SELECT entry, event_id, case_id, actor_id, body FROM log_leaves ORDER BY leaf_index",
    )
    return [(bytes(r[0]), r[1], r[2], r[3], None if r[4] is None else bytes(r[4])) for r in rows]


def leaf_event(leaf) -> dict:
    """The event a stored leaf (as log_entries returns it) records: a format-1 entry itself,
    or for format 2 the body its skeleton names, with the skeleton's fields."""
    entry, body = leaf[0], leaf[4] if len(leaf) > 4 else None
    if body is None:
        return parse_canonical(entry)
    return {**parse_canonical(body), **parse_canonical(entry)}


def forged_leaf(leaf, old: bytes, new: bytes) -> tuple:
    """What an intruder does to a format-2 leaf: edit the body and give the skeleton the new
    body's hash, so body and skeleton agree again (only the tree can tell)."""
    from vault.protocol import logentry

    entry, event_id, case_id, actor_id, body = leaf
    assert old in body
    body = body.replace(old, new)
    skeleton = dict(parse_canonical(entry), body=logentry.body_hash(body))
    return canonical_json(skeleton), event_id, case_id, actor_id, body


def rewrite_log(url: str, entries) -> None:
    """What a careful intruder does: rebuild every stored hash from the given leaves and forget
    the checkpoints already signed, so the server signs the new history as if it were the only
    one. Uses the server's own append code, so the tree is internally perfect."""
    from vault.db.engine import make_engine, make_sessionmaker
    from vault.db.models.log import LogCheckpoint, LogLeaf, LogNode, LogState
    from vault.services import auditlog

    engine = make_engine(url)
    try:
        with make_sessionmaker(engine)() as db:
            db.execute(sa.delete(LogNode))
            db.execute(sa.delete(LogLeaf))
            db.execute(sa.delete(LogCheckpoint))
            db.execute(sa.update(LogState).values(size=0, frontier=b""))
            # One at a time: a forged run may mix leaves with and without a body.
            for e in entries:
                auditlog.append_leaves(db, [auditlog.PendingLeaf(*e)])
            db.commit()
    finally:
        engine.dispose()


def walk_routes(routes, prefix: str = ""):
    """(method, path template) of every route of the app, so no new route escapes a walk."""
    for route in routes:
        if hasattr(route, "original_router"):  # FastAPI's lazily included routers
            sub = getattr(route.include_context, "prefix", "") or ""
            yield from walk_routes(route.original_router.routes, prefix + sub)
        else:
            for method in sorted(getattr(route, "methods", None) or ()):
                if method != "HEAD":
                    yield method, prefix + route.path


def bearer(vault) -> dict[str, str]:
    return {"Authorization": f"Bearer {vault.keystore.load_session()}"}


def plant_upload(uploader, case_id: str, plaintext: bytes, *, metadata=None,
                 **meta_fields) -> str:
    """Upload `plaintext` as `uploader` (a client.vault.Vault: a co-counsel with a modified
    client), signed and wrapped exactly like an honest upload, with a metadata record of its
    choosing: `metadata(sha256) -> FileMetadata` sealed as it is, or else an honest record
    with `meta_fields` laid over it, no path rule applied. Returns its file id."""
    ctx = CaseOps(uploader.session).load(case_id)
    file_id, file_key = new_id(), new_file_key()
    blob = io.BytesIO()
    res = encrypt_stream(io.BytesIO(plaintext), blob, file_key, case_id=case_id,
                         file_id=file_id, version=1)
    if metadata is not None:
        meta = encrypt_file_metadata(metadata(res.plaintext_sha256), file_key=file_key,
                                     case_id=case_id, file_id=file_id, version=1)
    else:
        honest = FileMetadata(name="x", size=len(plaintext), sha256=res.plaintext_sha256)
        body = {**file_metadata_body(honest), **meta_fields}
        ad = _aead.labelled(LABEL_FILE_META, case_id, file_id, 1)
        meta = _aead.seal(_seal._meta_key(file_key), canonical_json(body), ad)
    wrapped = wrap_file_key(file_key, case_key=ctx.key, case_id=case_id, file_id=file_id,
                            version=1, generation=ctx.generation)
    data = blob.getvalue()
    api = uploader.session.api
    upload_id = api.create_upload(case_id, {"file_id": file_id, "version": 1,
                                            "total_size": len(data),
                                            "part_size": len(data)})["upload_id"]
    api.upload_part(case_id, upload_id, 0, data, sha256=hashlib.sha256(data).hexdigest(),
                    length=len(data))
    signed = uploader.identity().sign(LABEL_MANIFEST, manifest_body(
        case_id=case_id, file_id=file_id, version=1, generation=ctx.generation,
        membership_seq=ctx.state.head.seq, blob_size=len(data),
        blob_sha256=hashlib.sha256(data).hexdigest(),
        meta_hash=hashlib.sha256(meta).hexdigest(),
        wrapped_key_hash=hashlib.sha256(wrapped).hexdigest(),
        uploader=uploader.identity().user_id, time=uploader.session.now()))
    api.complete_upload(case_id, upload_id, {"manifest": signed,
                                             "encrypted_metadata": b64e(meta),
                                             "wrapped_key": b64e(wrapped)})
    return file_id
