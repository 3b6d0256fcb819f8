"""`casevault audit --verify` and `casevault audit CASE_ID` against a real server whose operator
rewrites the audit log on disk: the commands verify first, name the problem and the evidence
file, exit non-zero and show nothing."""

from __future__ import annotations

import json
import re
from pathlib import Path

import sqlalchemy as sa

from vault.db.engine import make_engine, make_sessionmaker
from vault.db.models.log import LogCheckpoint, LogLeaf, LogNode, LogState
from vault.protocol import logentry
from vault.protocol.encoding import canonical_json, parse_canonical
from vault.services import auditlog

EXIT_INTEGRITY = 3


def _rewrite_upload_entry(database_url: str) -> None:
    """A careful operator: edit one entry and rebuild every hash so the tree looks whole."""
    engine = make_engine(database_url)
    try:
        with make_sessionmaker(engine)() as db:
            rows = db.execute(sa.select(LogLeaf).order_by(LogLeaf.leaf_index)).scalars().all()
            leaves = []
            for r in rows:
                # Format 2: the event is the body; the skeleton is given the edited body's hash.
                body = r.body.replace(b"file:version:uploaded", b"file:version:listed__")
                entry = canonical_json(
                    dict(parse_canonical(r.entry), body=logentry.body_hash(body)))
                leaves.append(auditlog.PendingLeaf(entry, r.event_id, r.case_id, r.actor_id,
                                                   body))
            db.execute(sa.delete(LogNode))
            db.execute(sa.delete(LogLeaf))
            db.execute(sa.delete(LogCheckpoint))
            db.execute(sa.update(LogState).values(size=0, frontier=b""))
            auditlog.append_leaves(db, leaves)
            db.commit()
    finally:
        engine.dispose()


def test_audit_verify_rechecks_receipts_and_catches_a_rewrite(lawyers, server) -> None:
    (alice,) = lawyers("alice")
    case_id = alice.json("case", "create", "R v Verified")["case_id"]
    doc = alice.workdir / "note.txt"
    doc.write_bytes(b"attendance note")
    (item,) = alice.json("put", case_id, str(doc))
    alice.run("get", case_id, item["file_id"], "-o", str(alice.workdir / "copy.txt"))

    summary = alice.json("audit", "--verify")
    assert summary["receipts"] == 3  # created, uploaded, downloaded
    assert summary["log_size"] >= 3
    human = alice.run("audit", "--verify").stdout
    assert "Audit log verified" in human and "3 receipt(s)" in human

    history = alice.json("audit", case_id)
    assert history and all(set(e) == {"index", "time", "actor", "action", "target", "actor_trust",
                                       "target_path"}
                           for e in history)
    uploads = [e for e in history if e["action"] == "file:version:uploaded"]
    assert uploads == [{**uploads[0], "actor": alice.username, "target": item["file_id"],
                        "target_path": item["path"]}]

    _rewrite_upload_entry(server.database_url)
    # A listing is logged once per window (T30): the server signs the forged log again, at
    # Alice's pinned size (a fork) or, when the listing opened a new window, past it.
    alice.run("ls", case_id)

    proc = alice.fail("audit", "--verify")
    assert proc.returncode == EXIT_INTEGRITY and proc.stdout == ""
    assert "not an extension" in proc.stderr or "(fork)" in proc.stderr
    (evidence,) = re.findall(r"evidence saved to (\S+?)\)", proc.stderr)
    assert Path(evidence).is_file() and "pinned checkpoint" in Path(evidence).read_text()

    proc = alice.fail("--json", "audit", case_id)
    assert proc.returncode == EXIT_INTEGRITY and proc.stdout == ""
    assert "evidence saved to" in proc.stderr


def test_audit_needs_a_case_or_verify(lawyers) -> None:
    (alice,) = lawyers("alice")
    proc = alice.fail("audit")
    assert "--verify" in proc.stderr
    assert json.loads(alice.run("audit", "--verify", "--json").stdout)["receipts"] == 0
