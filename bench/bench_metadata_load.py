"""Metadata under load: an authenticated list of a case of 10,000 files, whole and as one page
of the client's page size (1,000, from the middle of the case), under concurrent requests from
wrk (or an httpx/asyncio generator when wrk is missing), against a bare FastAPI route of the
same server process; then 20 concurrent logins at the real argon2 cost and their effect on
another user's metadata latency.

    python -m bench.bench_metadata_load [--files 10000] [--seconds 10] [--connections 8]
                                        [--logins 20] [--cheap-kdf] [--database-url URL]

The server is this module run as `serve`: the production `create_app(settings)` with one extra
trivial route, /bench/bare, mounted on this bench's own app instance only. Rows for the large
case are cloned from one real upload (same field sizes as real files) straight into the database.
All traffic goes to 127.0.0.1; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from bench.harness import ROOT, PgSchema, ServerProc, new_lawyer, table
from client.files.paging import LIST_PAGE_SIZE

P99_GOAL_MS = 250.0
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


# ---------------------------------------------------------------- the bench's own server


def serve(argv: list[str]) -> int:
    import uvicorn

    from vault.api.app import create_app
    from vault.config import Settings
    from vault.db.migrate import upgrade_database

    parser = argparse.ArgumentParser(prog="bench_metadata_load serve")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args(argv)
    settings = Settings(data_dir=args.data_dir, database_url=args.database_url)
    upgrade_database(settings.resolved_database_url())
    app = create_app(settings)

    # The peer: no auth, no database, the same middleware and event loop.
    @app.get("/bench/bare")
    def bare() -> dict[str, bool]:
        return {"ok": True}

    # Same server options as `casevault-server serve`.
    uvicorn.run(app, host=args.host, port=args.port, http="httptools", loop="uvloop",
                log_level="warning", server_header=False)
    return 0


# ---------------------------------------------------------------- seeding


def clone_files(database_url: str, blob_dir: Path, case_id: str, count: int) -> None:
    """Copy the case's one real file version `count - 1` times under fresh file ids.

    Each copy gets its own blob key, hard-linked to the real blob, so no row points at nothing.
    """
    from sqlalchemy import insert, select

    from vault.db.engine import make_engine
    from vault.db.models.files import FileRow, FileVersion
    from vault.protocol.ids import new_id

    engine = make_engine(database_url)
    try:
        with engine.begin() as conn:
            v = conn.execute(select(FileVersion).where(FileVersion.case_id == case_id)).one()
            f = conn.execute(select(FileRow).where(FileRow.case_id == case_id)).one()
            ids = [(new_id(), new_id()) for _ in range(count - 1)]
            original = blob_dir / v.blob_key[:2] / v.blob_key
            for _, key in ids:
                (blob_dir / key[:2]).mkdir(exist_ok=True)
                os.link(original, blob_dir / key[:2] / key)
            conn.execute(insert(FileRow), [{**f._asdict(), "file_id": i} for i, _ in ids])
            conn.execute(insert(FileVersion),
                         [{**v._asdict(), "file_id": i, "blob_key": k} for i, k in ids])
    finally:
        engine.dispose()


def seeded_case(vault, database_url: str, blob_dir: Path, name: str, files: int,
                scratch: Path) -> str:
    case_id = vault.create_case(name)
    sample = scratch / "statement.pdf"
    sample.write_bytes(os.urandom(20_000))
    vault.put(case_id, [sample])
    clone_files(database_url, blob_dir, case_id, files)
    return case_id


def middle_page_path(server_url: str, case_id: str, token: str, files: int) -> str:
    """The path of the page the client asks for halfway through the case (`?limit=` its page
    size, `&after=` the cursor the page before it ends on), so the rows are found by the
    (file_id, version) seek, not just read from the start."""
    path = f"/v1/cases/{case_id}/files"
    base = f"{path}?limit={LIST_PAGE_SIZE}"
    skip = (files // 2) // LIST_PAGE_SIZE * LIST_PAGE_SIZE
    if skip == 0:
        return base
    r = httpx.get(f"{server_url}{path}", params={"limit": skip},
                  headers={"Authorization": f"Bearer {token}"}, timeout=60)
    r.raise_for_status()
    after = r.json()["next"]
    if after is None:
        return base
    page = f"{base}&after={after}"
    r = httpx.get(f"{server_url}{page}", headers={"Authorization": f"Bearer {token}"},
                  timeout=60)
    r.raise_for_status()
    if len(r.json()["versions"]) != min(LIST_PAGE_SIZE, files - skip):
        raise RuntimeError(f"the page at {after} is not a full page")
    return page


# ---------------------------------------------------------------- load generators


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if m is None:
        raise ValueError(f"unexpected wrk time {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def run_wrk(url: str, token: str | None, seconds: int, connections: int) -> dict[str, float]:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "30s", "--latency"]
    if token:
        cmd += ["-H", f"Authorization: Bearer {token}"]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True,
                         timeout=seconds + 60).stdout
    pct = dict(re.findall(r"^\s*(50|99)(?:\.0+)?%\s+(\S+)\s*$", out, re.M))
    if set(pct) != {"50", "99"}:
        raise RuntimeError(f"no latency distribution in wrk's output:\n{out}")
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)$", out, re.M)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": _ms(pct["50"]),
        "p99_ms": _ms(pct["99"]),
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "non_2xx": int(bad.group(1)) if bad else 0,
        "socket_errors": errors.group(1).strip() if errors else "",
    }


def run_asyncio_load(url: str, token: str | None, seconds: int,
                     connections: int) -> dict[str, float]:
    """The wrk fallback: `connections` workers sending requests back to back."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    latencies: list[float] = []
    bad = 0

    async def worker(client: httpx.AsyncClient, deadline: float) -> None:
        nonlocal bad
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            r = await client.get(url, headers=headers)
            latencies.append((time.perf_counter() - start) * 1000)
            bad += r.status_code >= 300

    async def main() -> float:
        limits = httpx.Limits(max_connections=connections)
        async with httpx.AsyncClient(limits=limits, timeout=30) as client:
            start = time.perf_counter()
            deadline = start + seconds
            await asyncio.gather(*(worker(client, deadline) for _ in range(connections)))
            return time.perf_counter() - start

    elapsed = asyncio.run(main())
    latencies.sort()
    return {"rps": len(latencies) / elapsed, "p50_ms": _pct(latencies, 50),
            "p99_ms": _pct(latencies, 99), "requests": len(latencies), "non_2xx": bad,
            "socket_errors": ""}


def _pct(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    idx = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[idx]


# ---------------------------------------------------------------- logins vs metadata


class Probe(threading.Thread):
    """One user's metadata request, sent back to back, latencies recorded until stopped."""

    def __init__(self, url: str, token: str, max_seconds: float) -> None:
        super().__init__(daemon=True)
        self.url, self.token, self.max_seconds = url, token, max_seconds
        self.latencies: list[float] = []
        self.bad = 0
        self.stop = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        with httpx.Client(headers={"Authorization": f"Bearer {self.token}"}, timeout=30) as c:
            while not self.stop.is_set() and time.monotonic() < deadline:
                start = time.perf_counter()
                r = c.get(self.url)
                self.latencies.append((time.perf_counter() - start) * 1000)
                self.bad += r.status_code != 200


class LoginUser:
    def __init__(self, username: str, auth_key: bytes, totp_uri: str) -> None:
        import pyotp

        self.username, self.auth_key = username, auth_key
        self.totp = pyotp.parse_uri(totp_uri)
        # Activation used the step current at registration; each login takes a later step.
        self.last_step = int(time.time()) // 30

    def next_code(self) -> str:
        step = self.last_step + 1
        # The server accepts one step ahead of now; wait (bounded) until `step` is in range.
        while int(time.time()) // 30 + 1 < step:
            time.sleep(0.5)
        self.last_step = step
        return self.totp.at(step * 30)


def register_login_users(server_url: str, home: Path, count: int) -> list[LoginUser]:
    """Accounts made by the real client (its KDF, the server's argon2), activated, ready."""
    import secrets

    import pyotp

    from bench.harness import PASSPHRASE
    from client.vault import Vault

    users = []
    for i in range(count):
        name = f"login-{i}-{secrets.token_hex(3)}"
        vault = Vault(str(home / name), server=server_url, passphrase=PASSPHRASE)
        enrolment = vault.register(name, PASSPHRASE)
        vault.activate(enrolment, pyotp.parse_uri(enrolment.totp_uri).now())
        users.append(LoginUser(name, enrolment._auth_key, enrolment.totp_uri))
    return users


def login_burst(server_url: str, users: list[LoginUser], codes: list[str]) -> list[float]:
    """All users log in at the same instant; returns each login's seconds."""
    from vault.protocol.encoding import b64e

    barrier = threading.Barrier(len(users))
    took: list[float] = [0.0] * len(users)
    failures: list[str] = []

    def one(i: int) -> None:
        body = {"username": users[i].username, "auth_key": b64e(users[i].auth_key),
                "totp": codes[i]}
        barrier.wait(timeout=30)
        start = time.perf_counter()
        r = httpx.post(f"{server_url}/v1/auth/login", json=body, timeout=120)
        took[i] = time.perf_counter() - start
        if r.status_code != 200:
            failures.append(f"{r.status_code} {r.text[:200]}")

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(users))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    if failures:
        raise RuntimeError(f"{len(failures)} logins failed, first: {failures[0]}")
    return took


def probe_during(url: str, token: str, server_url: str, users: list[LoginUser] | None,
                 seconds: float) -> dict[str, float]:
    """Latency of one user's request: alone for `seconds`, or while a login burst runs."""
    # Codes first: waiting for a fresh TOTP step must not count as time under logins.
    codes = [u.next_code() for u in users] if users else []
    probe = Probe(url, token, max_seconds=max(seconds, 120))
    probe.start()
    logins: list[float] = []
    time.sleep(0.3 if users else seconds)
    if users:
        logins = login_burst(server_url, users, codes)
    probe.stop.set()
    probe.join(timeout=60)
    lat = sorted(probe.latencies)
    return {"n": len(lat), "p50_ms": _pct(lat, 50), "p99_ms": _pct(lat, 99),
            "max_ms": lat[-1] if lat else float("nan"), "non_200": probe.bad,
            "logins_max_s": max(logins) if logins else 0.0}


# ---------------------------------------------------------------- driver


def run(args: argparse.Namespace) -> dict[str, object]:
    scratch = Path(tempfile.mkdtemp(prefix="cv-meta-"))
    pg = PgSchema(args.database_url) if args.database_url else None
    env = {"PYTHONPATH": str(ROOT),
           # Bench accounts come from one address; the limits are not what is measured here.
           "CASEVAULT_RATE_LIMIT_REGISTER_ATTEMPTS": "1000",
           "CASEVAULT_RATE_LIMIT_ADDRESS_ATTEMPTS": "1000"}
    server = ServerProc(scratch / "server", database_url=pg.url if pg else None,
                        cheap_kdf=args.cheap_kdf, extra_env=env,
                        serve_cmd=[sys.executable, "-m", "bench.bench_metadata_load", "serve"])
    results: dict[str, object] = {"files": args.files, "connections": args.connections,
                                  "seconds": args.seconds, "database": "postgresql" if pg
                                  else "sqlite", "logins": args.logins,
                                  "cheap_kdf": args.cheap_kdf}
    try:
        server.start()
        db_url = pg.url if pg else f"sqlite:///{(server.data_dir / 'casevault.db').resolve()}"
        owner, _ = new_lawyer(server.url, scratch / "owner")
        blobs = server.data_dir / "blobs"
        big = seeded_case(owner, db_url, blobs, "R v Ten Thousand", args.files, scratch)
        small = seeded_case(owner, db_url, blobs, "R v Ten", 10, scratch)
        token = owner.keystore.load_session()
        page = middle_page_path(server.url, big, token, args.files)
        page_label = f"list a page of {LIST_PAGE_SIZE} of {args.files} files"
        load = run_wrk if shutil.which("wrk") else run_asyncio_load
        results["generator"] = "wrk" if load is run_wrk else "httpx-asyncio"
        targets = [("bare FastAPI route", "/bench/bare", None),
                   ("GET /v1/me (session check)", "/v1/me", token),
                   (f"list {args.files} files", f"/v1/cases/{big}/files", token),
                   (page_label, page, token),
                   ("list 10 files", f"/v1/cases/{small}/files", token)]
        results["load"] = {} if args.skip_load else {
            label: load(server.url + path, tok, args.seconds, args.connections)
            for label, path, tok in targets}
        users = register_login_users(server.url, scratch / "logins", args.logins)
        probes = {}
        for label, path in (("list 10 files", f"/v1/cases/{small}/files"),
                            (f"list {args.files} files", f"/v1/cases/{big}/files"),
                            (page_label, page)):
            url = server.url + path
            probes[label] = {"alone": probe_during(url, token, server.url, None, 5.0),
                             "during logins": probe_during(url, token, server.url, users, 0)}
        results["probes"] = probes
    finally:
        server.stop()
        if pg:
            pg.drop()
        shutil.rmtree(scratch, ignore_errors=True)
    return results


def report(r: dict) -> str:
    rows = []
    bare = r["load"].get("bare FastAPI route", {}).get("rps", 1.0)
    for label, m in r["load"].items():
        rows.append([label, f"{m['rps']:.1f}", f"{m['p50_ms']:.1f}", f"{m['p99_ms']:.1f}",
                     f"{m['rps'] / bare:.3f}x", m["requests"], m["non_2xx"]])
    load = table(["request", "req/s", "p50 ms", "p99 ms", "vs bare", "requests", "non-2xx"],
                 rows)
    prow = []
    for label, both in r["probes"].items():
        for when, m in both.items():
            prow.append([label, when, m["n"], f"{m['p50_ms']:.1f}", f"{m['p99_ms']:.1f}",
                         f"{m['max_ms']:.1f}", m["non_200"],
                         f"{m['logins_max_s']:.2f}" if when != "alone" else "-"])
    probes = table(["another user's request", "when", "n", "p50 ms", "p99 ms", "max ms",
                    "non-200", "slowest login s"], prow)
    return (f"Metadata load ({r['database']}, {r['generator']}, {r['connections']} connections, "
            f"{r['seconds']} s each)\n{load}\n\n{r['logins']} concurrent logins "
            f"({'test-only' if r['cheap_kdf'] else 'real'} argon2 cost), goal p99 <= "
            f"{P99_GOAL_MS:.0f} ms\n{probes}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:
        return serve(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--logins", type=int, default=20)
    parser.add_argument("--cheap-kdf", action="store_true",
                        help="test-only argon2 cost (default: the real cost)")
    parser.add_argument("--database-url", default=None,
                        help="PostgreSQL base URL (a fresh schema is made); default SQLite")
    parser.add_argument("--skip-load", action="store_true",
                        help="only the logins part (no wrk runs)")
    parser.add_argument("--json-out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.cheap_kdf:
        os.environ["CASEVAULT_TEST_INSECURE_KDF"] = "1"
    else:
        os.environ.pop("CASEVAULT_TEST_INSECURE_KDF", None)
    results = run(args)
    print(report(results))
    if args.json_out:
        args.json_out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
