"""A real `casevault-server serve` in a subprocess, for attacks on the transport (T28, T29).

The process is the console script itself, so the uvicorn configuration under attack is the one
`serve` builds (vault.serve.server_config), and its memory can be read from /proc.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import sqlalchemy as sa

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Served:
    url: str
    port: int
    process: subprocess.Popen
    log: Path
    database_url: str

    def rss_kib(self) -> int:
        """The server's resident memory now (VmRSS, KiB)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def sources(self) -> list[str | None]:
        """The source address of every audit event, in order of record."""
        engine = sa.create_engine(self.database_url)
        try:
            with engine.connect() as conn:
                rows = conn.execute(sa.text("SELECT source FROM audit_events ORDER BY id"))
                return [row[0] for row in rows]
        finally:
            engine.dispose()

    def connect(self, timeout: float = 5.0) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        sock.settimeout(timeout)
        return sock


@contextmanager
def serve(
    tmp_path: Path, database_url: str, *args: str, env: Mapping[str, str] | None = None
) -> Iterator[Served]:
    """`casevault-server serve` on a free loopback port with extra `args` and CASEVAULT_* `env`."""
    port = free_port()
    log = tmp_path / "server.log"
    with log.open("wb") as log_fh:
        process = subprocess.Popen(
            [str(BIN / "casevault-server"), "serve", "--host", "127.0.0.1", "--port", str(port),
             "--data-dir", str(tmp_path / "data"), "--database-url", database_url, *args],
            env={**os.environ, **(env or {})}, stdout=log_fh, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/v1/log/key", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start:\n{log.read_text()}")
            time.sleep(0.1)
        yield Served(url, port, process, log, database_url)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
