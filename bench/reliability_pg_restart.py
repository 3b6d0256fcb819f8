"""PostgreSQL gone and back under load: requests fail cleanly (503 problem+json, never a 500 or
a traceback) and succeed again once it is back.

    python -m bench.reliability_pg_restart [--database-url URL] [--threads 4] [--real-restart]
                                           [--keep-log FILE]

By default the server reaches PostgreSQL through a TCP relay in this process, and the outage is
the relay cutting every connection and refusing new ones for OUTAGE_SECONDS: what the server sees
of a restart, without disturbing anyone else using the cluster. --real-restart restarts the
machine's shared cluster instead (`pg_ctlcluster --skip-systemctl-redirect 15 main restart`), so
use it rarely and on purpose. Exits non-zero on a 5xx other than 503, on a reply
that is not problem+json, on a connection the server cut, on a traceback in the server's log,
when requests do not succeed again within RECOVERY_SECONDS of the restart, or when a file
uploaded before the restart does not round-trip after it. --keep-log keeps the server's log
(a loop of runs can collect every traceback a rare race produces).
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import socket
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
OUTAGE_SECONDS = 3.0
BEFORE_SECONDS = 3.0
RECOVERY_SECONDS = 10.0
AFTER_SECONDS = 12.0


class Relay:
    """A TCP relay 127.0.0.1:port -> target; `outage()` drops every connection for a while."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.down = threading.Event()
        self.closed = threading.Event()
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.down.is_set():
                client.close()  # refused while "restarting"
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def outage(self, seconds: float) -> None:
        self.down.set()
        with self.lock:
            conns, self.conns = self.conns, []
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
                c.close()
        time.sleep(seconds)
        self.down.clear()

    def close(self) -> None:
        self.closed.set()
        self.listener.close()
        self.outage(0)


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


def run(base_url: str, threads: int, root: Path, real_restart: bool) -> tuple[list[str], str]:
    import os
    from urllib.parse import urlsplit, urlunsplit

    from bench.harness import sha256_file

    os.environ["CASEVAULT_TEST_INSECURE_KDF"] = "1"
    pg = PgSchema(base_url)
    url = pg.url
    relay = None
    if not real_restart:
        parts = urlsplit(pg.url)
        relay = Relay((parts.hostname or "127.0.0.1", parts.port or 5432))
        netloc = parts.netloc.replace(f"{parts.hostname}:{parts.port or 5432}",
                                      f"127.0.0.1:{relay.port}")
        url = urlunsplit(parts._replace(netloc=netloc))
    server = ServerProc(root / "server", database_url=url)
    problems: list[str] = []
    try:
        server.start()
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
        if relay is None:
            subprocess.run(RESTART, check=True, capture_output=True, timeout=120)
        else:
            relay.outage(OUTAGE_SECONDS)
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
        log_text = server.log_text()
        if "Traceback" in log_text:
            first = log_text[log_text.index("Traceback"):][:4000]
            problems.append(f"the server log shows a traceback:\n{first}")
        text = (f"{'restart' if relay is None else 'relay outage'}: {len(samples)} requests, "
                f"statuses {dict(statuses)}; the outage lasted "
                f"{t_back - t_restart:.1f} s; first success "
                + (f"{recovered - t_back:.1f} s after PostgreSQL was back" if recovered
                   else "never"))
        return problems, text
    finally:
        server.stop()
        if relay is not None:
            relay.close()
        pg.drop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=PG_DEFAULT)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--real-restart", action="store_true",
                        help="restart the shared cluster instead of cutting a relay")
    parser.add_argument("--keep-log", type=Path, metavar="FILE",
                        help="copy the server's log to FILE (to study a failed run)")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="cv-pgrestart-"))
    try:
        problems, text = run(args.database_url, args.threads, root, args.real_restart)
    finally:
        if args.keep_log:
            for log in (root / "server").glob("server-*.log"):
                shutil.copyfile(log, args.keep_log)
        shutil.rmtree(root, ignore_errors=True)
    print(text)
    for line in problems[:20]:
        print(f"  {line}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
