"""Audit log: appends per second and proof times at 10^5 / 10^6 events, SQLite and PostgreSQL.

    python bench/bench_log.py [--sizes 100000 1000000] [--postgres URL] [--samples 2000]

For each database and size the log is filled in bulk (events plus leaves, 1000 per
transaction), then measured the way the server works: one event per transaction through
`record_event` (the event row and its leaf), against the peer measured in the same run, the
same event insert with the log switched off. Proof times are the median and 99th percentile of
inclusion and consistency proofs at random positions, each verified after it is built.
Goals: >= 2000 appends/s, proofs < 5 ms at 10^6.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import nacl.signing
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vault.db.engine import make_engine, make_sessionmaker  # noqa: E402
from vault.db.migrate import upgrade_database  # noqa: E402
from vault.db.models import AuditEvent, LogLeaf  # noqa: E402
from vault.logverify import verify_log  # noqa: E402
from vault.protocol import merkle  # noqa: E402
from vault.protocol.encoding import canonical_json  # noqa: E402
from vault.services import auditlog, events  # noqa: E402

FILL_BATCH = 1000
ACTOR = "a" * 32
CASE = "c" * 32


def _fill(sessions, target: int) -> None:
    """Bring the log to `target` events quickly: bulk event rows, then their leaves."""
    with sessions() as db:
        have = auditlog.tree_head(db)[0]
    detail = canonical_json({"bench": True}).decode()
    while have < target:
        n = min(FILL_BATCH, target - have)
        with sessions() as db:
            now = datetime.now(UTC)
            rows = [
                AuditEvent(time=now, actor_id=ACTOR, action="file:file:download",
                           case_id=CASE, file_id=None, source="192.0.2.1",
                           result="success", detail=detail, signed_record=None)
                for _ in range(n)
            ]
            db.add_all(rows)
            db.flush()
            auditlog.append_leaves(db, [
                auditlog.PendingLeaf(auditlog.entry_for_event(e), e.id, e.case_id, e.actor_id)
                for e in rows
            ])
            db.commit()
        have += n
        print(f"\r  filling {have}/{target}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)


def _appends_per_second(sessions, samples: int, with_log: bool) -> float:
    original = events.append_event
    if not with_log:
        events.append_event = lambda db, event: None  # the peer: a bare event insert
    try:
        start = time.perf_counter()
        for i in range(samples):
            with sessions() as db:
                events.record_event(db, action="file:file:download", actor_id=ACTOR,
                                    case_id=CASE, source="192.0.2.1", detail={"i": i})
                db.commit()
        return samples / (time.perf_counter() - start)
    finally:
        events.append_event = original


def _batched_appends_per_second(sessions, samples: int, per_txn: int = 100) -> float:
    """Events written by a busy server that groups them: 100 event rows and leaves a commit."""
    detail = canonical_json({"bench": True}).decode()
    start = time.perf_counter()
    for _ in range(samples // per_txn):
        with sessions() as db:
            now = datetime.now(UTC)
            rows = [
                AuditEvent(time=now, actor_id=ACTOR, action="file:file:download", case_id=CASE,
                           file_id=None, source=None, result="success", detail=detail,
                           signed_record=None)
                for _ in range(per_txn)
            ]
            db.add_all(rows)
            db.flush()
            auditlog.append_leaves(db, [
                auditlog.PendingLeaf(auditlog.entry_for_event(e), e.id, e.case_id, e.actor_id)
                for e in rows
            ])
            db.commit()
    return (samples // per_txn) * per_txn / (time.perf_counter() - start)


def _percentiles(times: list[float]) -> tuple[float, float]:
    times = sorted(times)
    return statistics.median(times) * 1000, times[int(len(times) * 0.99) - 1] * 1000


def _proof_times(sessions, probes: int) -> dict[str, tuple[float, float]]:
    rng = random.Random(7)
    inclusion, consistency = [], []
    with sessions() as db:
        size, root = auditlog.tree_head(db)
        for _ in range(probes):
            index = rng.randrange(size)
            t = time.perf_counter()
            proof = auditlog.inclusion_proof(db, index=index, size=size)
            inclusion.append(time.perf_counter() - t)
            leaf = db.scalar(sa.select(LogLeaf.leaf_hash).where(
                LogLeaf.leaf_index == index))
            assert merkle.verify_inclusion(leaf, index, size, proof, root)
        for _ in range(probes):
            first = rng.randrange(1, size)
            t = time.perf_counter()
            proof = auditlog.consistency_proof(db, first=first, second=size)
            consistency.append(time.perf_counter() - t)
            assert merkle.verify_consistency(first, size, auditlog.root_at(db, first), root,
                                             proof)
    return {"inclusion": _percentiles(inclusion), "consistency": _percentiles(consistency)}


def run(label: str, url: str, sizes: list[int], samples: int, probes: int) -> None:
    upgrade_database(url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    try:
        for size in sizes:
            print(f"{label}: filling to {size} events", file=sys.stderr)
            _fill(sessions, size)
            peer = _appends_per_second(sessions, samples, with_log=False)
            with engine.begin() as conn:
                # The peer's bare rows are not in the log; verify-log would rightly flag them.
                # NOT EXISTS, not NOT IN: PostgreSQL runs NOT IN over a million leaves as a
                # nested loop once the subquery outgrows work_mem, and never finishes.
                conn.execute(sa.text(
                    "DELETE FROM audit_events WHERE NOT EXISTS"
                    " (SELECT 1 FROM log_leaves WHERE log_leaves.event_id = audit_events.id)"))
            logged = _appends_per_second(sessions, samples, with_log=True)
            grouped = _batched_appends_per_second(sessions, samples * 5)
            proofs = _proof_times(sessions, probes)
            inc, con = proofs["inclusion"], proofs["consistency"]
            started = time.perf_counter()
            with engine.connect() as conn:
                report = verify_log(conn, auditlog.LogSigner(nacl.signing.SigningKey.generate()))
            verify_s = time.perf_counter() - started
            assert report.ok, report.problems[:3]
            print(
                f"{label:10} n={size:>8}  appends/s {logged:7.0f} (bare insert {peer:7.0f},"
                f" ratio {logged / peer:4.2f}; 100 per commit {grouped:7.0f})"
                f"  inclusion p50 {inc[0]:.2f} ms p99 {inc[1]:.2f} ms"
                f"  consistency p50 {con[0]:.2f} ms p99 {con[1]:.2f} ms"
                f"  verify-log {verify_s:.1f} s ({report.size / verify_s:.0f} entries/s)",
                flush=True,
            )
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    parser.add_argument("--samples", type=int, default=2000, help="appends timed per size")
    parser.add_argument("--probes", type=int, default=300, help="proofs timed per kind")
    parser.add_argument("--postgres", help="PostgreSQL URL (an empty database or schema)")
    parser.add_argument("--skip-sqlite", action="store_true")
    args = parser.parse_args()
    if not args.skip_sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            run("SQLite", f"sqlite:///{tmp}/bench.db", args.sizes, args.samples, args.probes)
    if args.postgres:
        run("PostgreSQL", args.postgres, args.sizes, args.samples, args.probes)


if __name__ == "__main__":
    main()
