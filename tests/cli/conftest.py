"""A real `casevault-server` (uvicorn) on a free loopback port, and lawyers driving the real
`casevault` console script in subprocesses, each with its own CASEVAULT_HOME.

The server is module-scoped to keep the suite fast; every test registers its own lawyers with
fresh names, so tests do not depend on each other. TOTP: a time step is accepted once per
account, so lawyers keep the session that activation gives them; a test that logs in again uses
the code of the next step (`totp_at(30)`) or a one-time TOTP recovery code.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import httpx
import pyotp
import pytest
import sqlalchemy as sa

BIN = Path(sys.executable).parent
POSTGRES_URL = os.environ.get("CASEVAULT_TEST_DATABASE_URL", "").strip()
PASSPHRASE = "correct horse battery staple"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    url: str
    data_dir: Path
    database_url: str
    process: subprocess.Popen
    log: Path

    def sql(self, statement: str, params: dict | None = None) -> list[tuple]:
        """Run SQL on the server's database, as an attacker with the disk would."""
        engine = sa.create_engine(self.database_url)
        try:
            with engine.begin() as conn:
                result = conn.execute(sa.text(statement), params or {})
                return [tuple(r) for r in result] if result.returns_rows else []
        finally:
            engine.dispose()

    def blob_path(self, case_id: str, file_id: str, version: int = 1) -> Path:
        ((key,),) = self.sql(
            "SELECT blob_key FROM file_versions WHERE case_id = :c AND file_id = :f "
            "AND version = :v", {"c": case_id, "f": file_id, "v": version})
        return self.data_dir / "blobs" / key[:2] / key


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("server")
    schema = None
    if POSTGRES_URL:
        schema = "cli_" + secrets.token_hex(6)
        admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        sep = "&" if "?" in POSTGRES_URL else "?"
        database_url = f"{POSTGRES_URL}{sep}options={quote('-csearch_path=' + schema)}"
    else:
        database_url = f"sqlite:///{data_dir / 'casevault.db'}"
    port = _free_port()
    env = {**os.environ, "CASEVAULT_TEST_INSECURE_KDF": "1"}
    log = data_dir / "server.log"
    with log.open("wb") as log_fh:
        proc = subprocess.Popen(
            [str(BIN / "casevault-server"), "serve", "--host", "127.0.0.1", "--port", str(port),
             "--data-dir", str(data_dir), "--database-url", database_url],
            env=env, stdout=log_fh, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/v1/log/key", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            proc.terminate()
            raise RuntimeError(f"server did not start:\n{log.read_text()}")
        time.sleep(0.2)
    try:
        yield Server(url, data_dir, database_url, proc, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if schema is not None:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()


@dataclass
class Lawyer:
    username: str
    home: Path
    server: Server
    workdir: Path
    totp_uri: str = ""
    recovery_code: str = ""
    totp_recovery_codes: list[str] = field(default_factory=list)
    activation_code: str = ""
    extra_env: dict[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "CASEVAULT_HOME": str(self.home),
            "CASEVAULT_SERVER": self.server.url,
            "CASEVAULT_PASSPHRASE": PASSPHRASE,
            "CASEVAULT_TEST_INSECURE_KDF": "1",
            **self.extra_env,
        }

    def run(self, *args: str, input: str | None = None,
            check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(BIN / "casevault"), *args], env=self.env(), cwd=self.workdir, input=input,
            capture_output=True, text=True, timeout=120,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"casevault {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
        return proc

    def json(self, *args: str) -> object:
        proc = self.run(*args, "--json")
        return json.loads(proc.stdout)

    def fail(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run a command that must fail: non-zero exit, one line on stderr, no traceback."""
        proc = self.run(*args, check=False)
        assert proc.returncode != 0, f"casevault {' '.join(args)} succeeded:\n{proc.stdout}"
        assert "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        return proc

    def totp_now(self) -> str:
        return pyotp.parse_uri(self.totp_uri).now()

    def totp_at(self, seconds_from_now: int) -> str:
        """The code of a later time step: the server accepts +-1 step, so no sleeping."""
        return pyotp.parse_uri(self.totp_uri).at(time.time() + seconds_from_now)

    @property
    def user_id(self) -> str:
        return json.loads((self.home / "profile.json").read_text())["user_id"]

    def popen(self, *args: str) -> subprocess.Popen[str]:
        """A `casevault` process to talk to through pipes (prompts read from stdin)."""
        return subprocess.Popen(
            [str(BIN / "casevault"), *args],
            env=self.env(), cwd=self.workdir, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )

    def register(self) -> None:
        proc = self.popen("--json", "register", self.username)
        assert proc.stdout is not None and proc.stdin is not None
        line = proc.stdout.readline()
        enrolment = json.loads(line)
        assert set(enrolment) >= {"username", "totp_uri", "recovery_code"}
        assert enrolment["username"] == self.username
        self.totp_uri = enrolment["totp_uri"]
        self.recovery_code = enrolment["recovery_code"]
        self.totp_recovery_codes = enrolment["totp_recovery_codes"]
        self.activation_code = self.totp_now()
        out, err = proc.communicate(self.activation_code + "\n", timeout=120)
        assert proc.returncode == 0, err


@pytest.fixture
def lawyers(server: Server, tmp_path: Path):
    """`lawyers("alice", "bob")` registers fresh lawyers (unique names per test)."""

    def make(*names: str) -> list[Lawyer]:
        out = []
        for name in names:
            username = f"{name}-{secrets.token_hex(3)}"
            workdir = tmp_path / name
            workdir.mkdir()
            lawyer = Lawyer(username, tmp_path / f"home-{name}", server, workdir)
            lawyer.register()
            out.append(lawyer)
        return out

    return make


@pytest.fixture
def laptop(server: Server, tmp_path: Path):
    """`laptop(username, folder)`: a client with a fresh CASEVAULT_HOME and nobody logged in
    (a second machine of an existing lawyer, or one about to register)."""

    def make(username: str, folder: str) -> Lawyer:
        workdir = tmp_path / folder
        workdir.mkdir()
        return Lawyer(username, workdir / "home", server, workdir)

    return make
