"""SIGKILL the server in the middle of uploads, at random moments, and check that nothing is lost.

    python -m bench.reliability_kill [--kills 20] [--size-mib 20] [--seed N] [--database-url URL]

Each round uploads a fresh file with client.vault (the code behind `casevault put`) and kills
the server at a random moment of that upload. After the restart:
- no row points at a missing or different blob, and no partial version is visible (a version row
  exists only with its whole blob; the client lists and verifies the case);
- `casevault-server verify-log` recomputes the audit log without a gap;
- a new client process resumes the upload from its saved state and completes it; the download's
  SHA-256 equals the source file's, and the file is in the case exactly once.
Exits non-zero on any loss. Rounds whose upload ended before the kill do not count.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.harness import PASSPHRASE, PgSchema, ServerProc, new_lawyer, write_random_file
from bench.reliability_checks import LossError, check_store

MIB = 1024 * 1024


@dataclass
class KillReport:
    kills: int = 0
    missed: int = 0
    resumed_parts: int = 0
    seconds: float = 0.0
    errors_seen: dict[str, int] = field(default_factory=dict)


def _vault(server: ServerProc, home: Path):
    from client.vault import Vault

    # A new object per attempt, as a new `casevault` process would be.
    return Vault(str(home), server=server.url, passphrase=PASSPHRASE)


def _upload_in_thread(server: ServerProc, home: Path, case_id: str, src: Path) -> tuple:
    outcome: dict[str, object] = {}

    def work() -> None:
        try:
            outcome["result"] = _vault(server, home).put(case_id, [src])
        except Exception as exc:  # the kill surfaces as whatever the client raises
            outcome["error"] = exc

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread, outcome


def _after_restart(server: ServerProc, home: Path, case_id: str, src: Path, sha: str,
                   database_url: str, scratch: Path, done: dict | None) -> None:
    """`done` is the put's result when it finished before the kill; else the put is resumed."""
    check_store(database_url, server.data_dir / "blobs")
    verdict = server.verify_log()
    if verdict.returncode != 0:
        raise LossError(f"verify-log failed: {verdict.stdout}{verdict.stderr}")
    vault = _vault(server, home)
    vault.ls(case_id)  # verifies every visible version; raises on anything partial or forged
    if done is None:
        (done,) = vault.put(case_id, [src])
    if done["sha256"] != sha:
        raise LossError(f"resumed upload reports {done['sha256']}, the file is {sha}")
    named = [f for f in vault.ls(case_id) if f["name"] == src.name]
    if len(named) != 1:
        raise LossError(f"{src.name} is in the case {len(named)} times after the resume: "
                        + ", ".join(f"{f['file_id']} v{f['version']}" for f in named))
    out = scratch / f"check-{src.name}"
    got = vault.get(case_id, done["file_id"], output=out)
    from bench.harness import sha256_file

    if got["sha256"] != sha or sha256_file(out) != sha:
        raise LossError(f"download of {src.name} does not match the source")
    out.unlink()


def run(kills: int, size: int, seed: int, database_url: str | None, root: Path,
        log=print) -> KillReport:
    import os

    os.environ["CASEVAULT_TEST_INSECURE_KDF"] = "1"
    rng = random.Random(seed)
    report = KillReport()
    started = time.monotonic()
    server = ServerProc(root / "server", database_url=database_url, cheap_kdf=True).start()
    db_url = database_url or f"sqlite:///{(server.data_dir / 'casevault.db').resolve()}"
    try:
        home = root / "home"
        vault, _ = new_lawyer(server.url, home)
        case_id = vault.create_case("R v Kill")
        # Calibrate: how long one clean upload takes, so kill moments fall inside uploads.
        first = root / "calibrate.bin"
        write_random_file(first, size)
        t0 = time.perf_counter()
        vault.put(case_id, [first])
        span = time.perf_counter() - t0
        attempt = 0
        while report.kills < kills and attempt < kills * 3:
            attempt += 1
            src = root / f"evidence-{attempt:03d}.bin"
            sha = write_random_file(src, size)
            thread, outcome = _upload_in_thread(server, home, case_id, src)
            time.sleep(rng.uniform(0.02, span))
            server.kill()
            thread.join(timeout=120)
            if "result" in outcome:
                report.missed += 1
            else:
                report.kills += 1
                name = type(outcome.get("error")).__name__
                report.errors_seen[name] = report.errors_seen.get(name, 0) + 1
            server.start()
            if "error" in outcome:
                log(f"round {attempt}: the client saw {outcome['error']!r}")
            finished = outcome["result"][0] if "result" in outcome else None
            _after_restart(server, home, case_id, src, sha, db_url, root, finished)
            src.unlink()
            log(f"round {attempt}: {'killed mid-upload' if 'error' in outcome else 'missed'}"
                f", resumed and verified")
    finally:
        server.stop()
    report.seconds = time.monotonic() - started
    if report.kills < kills:
        raise LossError(f"only {report.kills} of {kills} kills landed inside an upload")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--size-mib", type=int, default=20)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--database-url", default=None,
                        help="PostgreSQL base URL (a fresh schema is made); default SQLite")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 32)
    root = Path(tempfile.mkdtemp(prefix="cv-kill-"))
    pg = PgSchema(args.database_url) if args.database_url else None
    try:
        report = run(args.kills, args.size_mib * MIB, seed, pg.url if pg else None, root)
    except LossError as exc:
        print(f"LOSS (seed {seed}): {exc}", file=sys.stderr)
        return 1
    finally:
        if pg:
            pg.drop()
        shutil.rmtree(root, ignore_errors=True)
    print(f"{report.kills} kills inside uploads ({report.missed} missed), seed {seed}, "
          f"{report.seconds:.0f} s; client errors at the kill: {report.errors_seen}; "
          "after every restart: no dangling row, log verified, upload resumed, hash matched")
    return 0


if __name__ == "__main__":
    sys.exit(main())
