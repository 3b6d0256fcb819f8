"""Many concurrent lawyers doing a mixed workflow for a bounded time: zero 5xx, zero lost or
corrupted files, and an audit log that verifies afterwards.

    python -m bench.reliability_load [--clients 50] [--seconds 60] [--servers 1]
                                     [--database-url URL]

Each lawyer owns a case shared with the next lawyer, and loops: upload a random file, list the
case (every file it uploaded must be there with its hash), download one of its files, download a
file of the case shared with it, and now and then share its case with someone else. Every
download's SHA-256 is checked. With --database-url (PostgreSQL; a fresh schema is made) and
--servers 2, two server processes share the database and the blob folder and the lawyers are
spread over both. Exits non-zero on any 5xx, loss, corruption or unexpected error.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bench.harness import PgSchema, ServerProc, new_lawyer, sha256_file
from bench.reliability_checks import LossError, check_store, temp_files

KIB = 1024
# Registration and sign-in limits count per address; every bench lawyer comes from 127.0.0.1.
LIMIT_ENV = {"CASEVAULT_RATE_LIMIT_REGISTER_ATTEMPTS": "10000",
             "CASEVAULT_RATE_LIMIT_ADDRESS_ATTEMPTS": "10000"}


@dataclass
class LoadReport:
    operations: Counter = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    corrupted: list[str] = field(default_factory=list)
    other_errors: list[str] = field(default_factory=list)
    files: int = 0
    seconds: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, op: str) -> None:
        with self.lock:
            self.operations[op] += 1


@dataclass
class Lawyer:
    index: int
    vault: object
    username: str
    case_id: str = ""
    # (file_id -> sha256) of files this lawyer uploaded and saw completed.
    files: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def known(self) -> list[tuple[str, str]]:
        with self.lock:
            return list(self.files.items())


def _classify(report: LoadReport, who: str, op: str, exc: BaseException) -> None:
    from client.api import ApiError
    from client.crypto.errors import IntegrityError

    line = f"{who} {op}: {type(exc).__name__}: {exc}"
    with report.lock:
        if isinstance(exc, ApiError) and exc.status >= 500:
            report.server_errors.append(f"{line} (HTTP {exc.status} {exc.code})")
        elif isinstance(exc, IntegrityError | LossError):
            report.corrupted.append(line)
        else:
            report.other_errors.append(line)


def _workflow(me: Lawyer, lawyers: list[Lawyer], deadline: float, scratch: Path,
              report: LoadReport, seed: int) -> None:
    rng = random.Random(seed)
    upstream = lawyers[(me.index - 1) % len(lawyers)]  # its case is shared with me
    shares_left = 2
    n = 0
    while time.monotonic() < deadline:
        n += 1
        op = rng.choices(["put", "ls", "get", "get_shared", "share"], [3, 2, 2, 2, 1])[0]
        try:
            if op == "put":
                src = scratch / f"l{me.index}-{n}.bin"
                data = rng.randbytes(rng.randint(1, 512) * KIB)
                src.write_bytes(data)
                (done,) = me.vault.put(me.case_id, [src])
                src.unlink()
                with me.lock:
                    me.files[done["file_id"]] = done["sha256"]
            elif op == "ls":
                listed = {f["file_id"]: f["sha256"] for f in me.vault.ls(me.case_id)}
                for file_id, sha in me.known():
                    if listed.get(file_id) != sha:
                        raise LossError(f"file {file_id} is missing or changed in the listing")
            elif op in ("get", "get_shared"):
                owner = me if op == "get" else upstream
                known = owner.known()
                if not known:
                    continue
                file_id, sha = rng.choice(known)
                out = scratch / f"l{me.index}-{n}.out"
                me.vault.get(owner.case_id, file_id, output=out)
                got = sha256_file(out)
                out.unlink()
                if got != sha:
                    raise LossError(f"download of {file_id} has another SHA-256")
            elif shares_left:
                shares_left -= 1
                other = rng.choice(lawyers)
                members = {m["username"] for m in me.vault.members(me.case_id)}
                if other.username in members:
                    continue
                me.vault.share(me.case_id, other.username, role="viewer")
            else:
                continue
            report.count(op)
        except Exception as exc:
            _classify(report, me.username, op, exc)


def _final_check(lawyers: list[Lawyer], scratch: Path, report: LoadReport) -> None:
    """Every file any lawyer saw completed is still there, whole, for its owner."""
    for me in lawyers:
        listed = {f["file_id"]: f["sha256"] for f in me.vault.ls(me.case_id)}
        for file_id, sha in me.known():
            report.files += 1
            if listed.get(file_id) != sha:
                report.corrupted.append(f"{me.username}: {file_id} lost from the listing")
                continue
            out = scratch / "final.out"
            me.vault.get(me.case_id, file_id, output=out)
            if sha256_file(out) != sha:
                report.corrupted.append(f"{me.username}: {file_id} corrupted")
            out.unlink()


def run(clients: int, seconds: float, database_url: str | None, n_servers: int, root: Path,
        log=print) -> LoadReport:
    import os

    os.environ["CASEVAULT_TEST_INSECURE_KDF"] = "1"
    data_dir = root / "server"
    servers = [ServerProc(data_dir, database_url=database_url, extra_env=LIMIT_ENV)
               for _ in range(n_servers)]
    report = LoadReport()
    try:
        for server in servers:  # one after another: the first one migrates
            server.start()
        lawyers = []
        for i in range(clients):
            vault, name = new_lawyer(servers[i % n_servers].url, root / f"home-{i}")
            lawyers.append(Lawyer(i, vault, name))
        for me in lawyers:
            me.case_id = me.vault.create_case(f"R v Load {me.index}")
        for me in lawyers:
            me.vault.share(me.case_id, lawyers[(me.index + 1) % clients].username)
        log(f"{clients} lawyers ready on {n_servers} server process(es); running {seconds} s")
        scratch = root / "scratch"
        scratch.mkdir()
        deadline = time.monotonic() + seconds
        start = time.monotonic()
        threads = [threading.Thread(target=_workflow, daemon=True,
                                    args=(me, lawyers, deadline, scratch, report, me.index))
                   for me in lawyers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=seconds + 300)
        report.seconds = time.monotonic() - start
        if any(t.is_alive() for t in threads):
            report.other_errors.append("a lawyer's workflow did not finish in time")
        _final_check(lawyers, scratch, report)
        db_url = database_url or f"sqlite:///{(data_dir / 'casevault.db').resolve()}"
        check_store(db_url, data_dir / "blobs")
        leftovers = temp_files(data_dir / "blobs")
        if leftovers:
            report.corrupted.append(f"{len(leftovers)} half-written blobs left")
    finally:
        for server in servers:
            server.stop()
    logs = "".join(s.log_text() for s in servers)
    if '" 500 ' in logs or "Traceback" in logs:
        report.server_errors.append("the server log shows a 500 or a traceback")
    verdict = servers[0].verify_log()
    if verdict.returncode != 0:
        report.corrupted.append(f"verify-log failed: {verdict.stdout}{verdict.stderr}".strip())
    return report


def summary(report: LoadReport) -> str:
    ops = ", ".join(f"{k} {v}" for k, v in sorted(report.operations.items()))
    total = sum(report.operations.values())
    return (f"{total} operations in {report.seconds:.0f} s ({total / max(report.seconds, 1e-9):.1f}"
            f"/s): {ops}; {report.files} files re-checked at the end; 5xx: "
            f"{len(report.server_errors)}, lost or corrupted: {len(report.corrupted)}, other "
            f"errors: {len(report.other_errors)}")


def failures(report: LoadReport) -> list[str]:
    return report.server_errors + report.corrupted + report.other_errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--servers", type=int, default=1)
    parser.add_argument("--database-url", default=None,
                        help="PostgreSQL base URL (a fresh schema is made); default SQLite")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="cv-load-"))
    pg = PgSchema(args.database_url) if args.database_url else None
    try:
        report = run(args.clients, args.seconds, pg.url if pg else None, args.servers, root)
    finally:
        if pg:
            pg.drop()
        shutil.rmtree(root, ignore_errors=True)
    print(summary(report))
    bad = failures(report)
    for line in bad[:20]:
        print(f"  {line}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
