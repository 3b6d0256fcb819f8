"""PostgreSQL restarted under load: requests fail cleanly (503 problem+json, never a 500 or a
traceback) and succeed again once it is back.

    python -m bench.reliability_pg_restart [--database-url URL] [--threads 4]

Restarts the machine's shared cluster once (`pg_ctlcluster --skip-systemctl-redirect 15 main
restart`), so run it rarely and on purpose. Exits non-zero on a 5xx other than 503, on a reply
that is not problem+json, when requests do not succeed again within RECOVERY_SECONDS of the
restart, or when a file uploaded before the restart does not round-trip after it.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

from bench.harness import PG_DEFAULT, PgSchema, ServerProc, new_lawyer, write_random_file

RESTART = ["pg_ctlcluster", "--skip-systemctl-redirect", "15", "main", "restart"]
BEFORE_SECONDS = 3.0
RECOVERY_SECONDS = 10.0
AFTER_SECONDS = 12.0


def _load(url: str, token: str, paths: list[str], stop: threading.Event,
          samples: list[tuple[float, int, str, str]]) -> None:
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"},
                      timeout=30) as http:
        i = 0
        while not stop.is_set():
            path = paths[i % len(paths)]
            i += 1
            try:
                r = http.get(path)
                samples.append((time.monotonic(), r.status_code,
                                r.headers.get("content-type", ""), r.text[:300]))
            except httpx.TransportError as exc:
                samples.append((time.monotonic(), 0, "", type(exc).__name__))
            time.sleep(0.01)


def run(base_url: str, threads: int, root: Path) -> tuple[list[str], str]:
    import os

    from bench.harness import sha256_file

    os.environ["CASEVAULT_TEST_INSECURE_KDF"] = "1"
    pg = PgSchema(base_url)
    server = ServerProc(root / "server", database_url=pg.url).start()
    problems: list[str] = []
    try:
        vault, _ = new_lawyer(server.url, root / "home")
        case_id = vault.create_case("R v Restart")
        src = root / "before.bin"
        sha = write_random_file(src, 256 * 1024)
        (before,) = vault.put(case_id, [src])
        token = vault.keystore.load_session()
        paths = [f"/v1/cases/{case_id}/files", "/v1/me", "/v1/log/checkpoint"]
        samples: list[tuple[float, int, str, str]] = []
        stop = threading.Event()
        workers = [threading.Thread(target=_load, args=(server.url, token, paths, stop, samples))
                   for _ in range(threads)]
        for w in workers:
            w.start()
        time.sleep(BEFORE_SECONDS)
        t_restart = time.monotonic()
        subprocess.run(RESTART, check=True, capture_output=True, timeout=120)
        t_back = time.monotonic()
        time.sleep(AFTER_SECONDS)
        stop.set()
        for w in workers:
            w.join(timeout=60)
        statuses = Counter(s for _, s, _, _ in samples)
        failed = [s for s in samples if s[1] != 200]
        for t, status, ctype, body in failed:
            if status in (0,) or status == 500 or (status >= 500 and status != 503):
                problems.append(f"HTTP {status} at +{t - t_restart:.1f} s: {body[:150]}")
            elif not ctype.startswith("application/problem+json") or "Traceback" in body:
                problems.append(f"HTTP {status} is not a clean problem: {body[:150]}")
        late = [s for s in samples if s[0] > t_back + RECOVERY_SECONDS and s[1] != 200]
        if late:
            problems.append(f"{len(late)} requests still failed {RECOVERY_SECONDS:.0f} s after "
                            "PostgreSQL was back")
        recovered = next((t for t, s, _, _ in samples if t > t_back and s == 200), None)
        out = root / "after.bin"
        vault.get(case_id, before["file_id"], output=out)
        if sha256_file(out) != sha:
            problems.append("the file uploaded before the restart does not round-trip")
        if "Traceback" in server.log_text():
            problems.append("the server log shows a traceback")
        text = (f"{len(samples)} requests, statuses {dict(statuses)}; restart took "
                f"{t_back - t_restart:.1f} s; first success "
                + (f"{recovered - t_back:.1f} s after PostgreSQL was back" if recovered
                   else "never"))
        return problems, text
    finally:
        server.stop()
        pg.drop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=PG_DEFAULT)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="cv-pgrestart-"))
    try:
        problems, text = run(args.database_url, args.threads, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(text)
    for line in problems[:20]:
        print(f"  {line}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
