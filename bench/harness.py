"""Shared plumbing for the benchmarks and reliability scripts: a real `casevault-server serve`
process on 127.0.0.1, lawyers driven through client.vault, PostgreSQL schemas, peak memory.

Traffic only ever goes to 127.0.0.1. Every process started here is ended here, by its pid.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import httpx

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PASSPHRASE = "correct horse battery staple"
PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
BLOCK = 1024 * 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(BLOCK):
            h.update(block)
    return h.hexdigest()


def write_random_file(path: Path, size: int) -> str:
    """Incompressible content of `size` bytes; returns its SHA-256."""
    h = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            block = os.urandom(min(BLOCK, left))
            h.update(block)
            f.write(block)
            left -= len(block)
    return h.hexdigest()


def vm_hwm_kib(pid: int) -> int:
    """Peak resident set size of a live process (VmHWM), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmHWM for pid {pid}")


def insecure_env(cheap_kdf: bool) -> dict[str, str]:
    env = dict(os.environ)
    if cheap_kdf:
        env["CASEVAULT_TEST_INSECURE_KDF"] = "1"
    else:
        env.pop("CASEVAULT_TEST_INSECURE_KDF", None)
    return env


@dataclass
class ServerProc:
    """One `casevault-server serve` subprocess; restartable on the same data and database."""

    data_dir: Path
    database_url: str | None = None
    cheap_kdf: bool = True
    extra_env: dict[str, str] = field(default_factory=dict)
    # The command before --host/--port/--data-dir; a bench may serve its own app instance.
    serve_cmd: list[str] = field(
        default_factory=lambda: [str(BIN / "casevault-server"), "serve"])
    port: int = 0
    process: subprocess.Popen | None = None
    log: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 60.0) -> ServerProc:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = free_port()
        env = {**insecure_env(self.cheap_kdf), **self.extra_env}
        cmd = [*self.serve_cmd, "--host", "127.0.0.1",
               "--port", str(self.port), "--data-dir", str(self.data_dir)]
        if self.database_url:
            cmd += ["--database-url", self.database_url]
        self.log = self.data_dir / f"server-{self.port}.log"
        with self.log.open("ab") as fh:
            self.process = subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/v1/log/key", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"server did not start:\n{self.log_text()[-3000:]}")
            time.sleep(0.1)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log and self.log.exists() else ""

    def kill(self) -> None:
        """SIGKILL: no shutdown handlers, no flushing; what a power cut looks like to us."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()

    def verify_log(self) -> subprocess.CompletedProcess[str]:
        cmd = [str(BIN / "casevault-server"), "verify-log", "--data-dir", str(self.data_dir)]
        if self.database_url:
            cmd += ["--database-url", self.database_url]
        return subprocess.run(cmd, env={**insecure_env(self.cheap_kdf), **self.extra_env},
                              capture_output=True, text=True, timeout=600)


class PgSchema:
    """A fresh schema in the shared PostgreSQL, dropped afterwards; others use the same server."""

    def __init__(self, base_url: str = PG_DEFAULT) -> None:
        import sqlalchemy as sa

        self.name = "bench_" + secrets.token_hex(6)
        # pre_ping: the schema is dropped after a database restart too.
        self._admin = sa.create_engine(base_url, isolation_level="AUTOCOMMIT",
                                       pool_pre_ping=True)
        with self._admin.connect() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{self.name}"'))
        sep = "&" if "?" in base_url else "?"
        self.url = f"{base_url}{sep}options={quote('-csearch_path=' + self.name)}"

    def drop(self) -> None:
        import sqlalchemy as sa

        with self._admin.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{self.name}" CASCADE'))
        self._admin.dispose()


def new_lawyer(server_url: str, home: Path, name: str | None = None) -> tuple[object, str]:
    """Register and activate a lawyer with client.vault; returns (Vault, username)."""
    import pyotp

    from client.vault import Vault

    username = name or f"lawyer-{secrets.token_hex(4)}"
    vault = Vault(str(home), server=server_url, passphrase=PASSPHRASE)
    enrolment = vault.register(username, PASSPHRASE)
    vault.activate(enrolment, pyotp.parse_uri(enrolment.totp_uri).now())
    return vault, username


def client_env(server: ServerProc, home: Path) -> dict[str, str]:
    """Environment for the `casevault` console script acting as the lawyer living in `home`."""
    return {**insecure_env(server.cheap_kdf), "CASEVAULT_HOME": str(home),
            "CASEVAULT_SERVER": server.url, "CASEVAULT_PASSPHRASE": PASSPHRASE}


@dataclass(frozen=True)
class Measured:
    """One finished command: wall seconds, its CPU seconds (user + system), peak RSS, stdout."""

    seconds: float
    cpu_s: float
    rss_kib: int
    stdout: str


def run_measured(cmd: list[str], env: dict[str, str], cwd: Path | None = None) -> Measured:
    """Run a command to completion under GNU time.

    The peak comes from GNU time, not from our own wait4: on Linux a child forked from this
    process starts with this process's high-water mark, which would be counted as its own.
    """
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        out, err, stats = (Path(tmp) / n for n in ("out", "err", "stats"))
        with out.open("wb") as o, err.open("wb") as e:
            start = time.perf_counter()
            rc = subprocess.run(["/usr/bin/time", "-f", "%M %U %S", "-o", str(stats),
                                 *map(str, cmd)], env=env, cwd=cwd, stdout=o,
                                stderr=e).returncode
            elapsed = time.perf_counter() - start
        tail = err.read_text(errors="replace")[-2000:]
        if rc != 0:
            raise RuntimeError(f"{' '.join(map(str, cmd[:3]))} exited {rc}: {tail}")
        rss, user, system = stats.read_text().split()[-3:]
        return Measured(elapsed, float(user) + float(system), int(rss),
                        out.read_text(errors="replace"))


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a running process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def table(headers: list[str], rows: list[list[object]]) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
