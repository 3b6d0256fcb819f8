"""The login path against a real `casevault-server serve` (uvicorn) on 127.0.0.1, and the logs.

The server starts on a fresh database, so this also proves `serve` migrates by itself.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from urllib.parse import parse_qs, urlparse

import httpx
import pyotp
import pytest


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def server(database_url, tmp_path):
    port = _free_port()
    log_path = tmp_path / "server.log"
    env = {**os.environ, "CASEVAULT_TEST_INSECURE_KDF": "1"}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "vault.cli", "serve", "--host", "127.0.0.1",
             "--port", str(port), "--data-dir", str(tmp_path / "data"),
             "--database-url", database_url],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.post(f"{base}/v1/accounts/prelogin", json={"username": "x"}, timeout=1)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(log_path.read_text()) from None
                time.sleep(0.1)
        yield base, log_path
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_register_activate_login_over_real_http_and_nothing_secret_in_logs(
    server, registration
):
    base, log_path = server
    body, user = registration("alice")
    with httpx.Client(base_url=base, timeout=10) as http:
        enrolment = http.post("/v1/accounts/register", json=body)
        assert enrolment.status_code == 201, enrolment.text
        secret = parse_qs(urlparse(enrolment.json()["totp_uri"]).query)["secret"][0]
        totp = pyotp.TOTP(secret)
        # Activate with the previous step's code and log in with the current one: both are in
        # the window and the second is always the newer step, whatever the wall clock does.
        activated = http.post("/v1/accounts/activate", json={
            "username": "alice", "auth_key": user.auth_key,
            "totp": totp.at(time.time() - 30)})
        assert activated.status_code == 200, activated.text
        code = totp.at(time.time())
        credentials = {"username": "alice", "auth_key": user.auth_key, "totp": code}
        login = http.post("/v1/auth/login", json=credentials)
        assert login.status_code == 200, login.text
        token = login.json()["token"]
        me = http.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert me.json()["username"] == "alice"
        replay = http.post("/v1/auth/login", json=credentials)
        assert replay.status_code == 401
        assert replay.headers["content-type"] == "application/problem+json"
        assert replay.json()["code"] == "invalid_credentials"
        assert http.post("/v1/auth/logout", headers={"Authorization": f"Bearer {token}"}
                         ).status_code == 204

    time.sleep(0.2)
    logged = log_path.read_text()
    assert "POST /v1/auth/login" in logged  # the access log was captured
    for sensitive in (secret, token, activated.json()["token"], user.auth_key,
                      user.recovery_auth, code, *enrolment.json()["recovery_codes"]):
        assert sensitive not in logged


def test_in_process_logs_hold_no_secrets(client, make_user, clock, caplog):
    caplog.set_level(logging.DEBUG)
    alice = make_user("alice")
    code = alice.totp_at(clock.now)
    for auth_key in ("wrong", alice.auth_key, alice.auth_key):
        client.post("/v1/auth/login",
                    json={"username": "alice", "auth_key": auth_key, "totp": code})
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for sensitive in (alice.totp_secret, alice.token, alice.auth_key, *alice.recovery_codes):
        assert sensitive not in logged
