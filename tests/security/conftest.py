"""Fixtures of the adversarial suite (helpers live in attack_kit.py, importable by name)."""

from __future__ import annotations

import pytest
from attack_kit import PASSPHRASE, CaseLog, make_identity

from client.crypto.keys import Identity


@pytest.fixture(autouse=True)
def _cheap_kdf(monkeypatch):
    """Cheap Argon2id for the suite; T2/T4 tests that need the real floor delete it again."""
    monkeypatch.setenv("CASEVAULT_TEST_INSECURE_KDF", "1")


@pytest.fixture
def people() -> dict[str, Identity]:
    """Alice (owner), Bob (editor), Vera (viewer), Mallory (outsider)."""
    return {name: make_identity(name) for name in ("alice", "bob", "vera", "mallory")}


@pytest.fixture
def case(people) -> CaseLog:
    log = CaseLog(people["alice"])
    log.add(people["bob"], "editor")
    log.add(people["vera"], "viewer")
    log.know(people["mallory"])
    return log


@pytest.fixture
def live_server(app):
    """The test app served by a real uvicorn on a free loopback port; yields its base URL."""
    import socket
    import threading
    import time

    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def lawyer(live_server, clock, tmp_path):
    """`lawyer(name)` -> a registered, active, logged-in `client.vault.Vault` of its own home."""
    from urllib.parse import parse_qs, urlparse

    import pyotp

    from client.vault import Vault

    def _make(username: str) -> Vault:
        vault = Vault(str(tmp_path / f"home-{username}"), server=live_server, passphrase=PASSPHRASE)
        enrolment = vault.register(username, PASSPHRASE)
        secret = parse_qs(urlparse(enrolment.totp_uri).query)["secret"][0]
        vault.activate(enrolment, pyotp.TOTP(secret).at(clock.now))
        vault.totp_secret = secret
        clock.advance(30)  # the next code anyone asks for is of a fresh step
        return vault

    return _make


@pytest.fixture
def shared_world(lawyer, tmp_path):
    """Alice's case with one file; Bob is a real user with a case of his own but not in hers.

    Returns (alice, bob, case_id, file_id, bob_case_id) with `client.vault.Vault` lawyers.
    """
    alice, bob = lawyer("alice"), lawyer("bob")
    case_id = alice.create_case("R v Lindqvist")
    doc = tmp_path / "disclosure.txt"
    doc.write_bytes(b"disclosure schedule")
    (put,) = alice.put(case_id, [doc])
    bob_case = bob.create_case("R v Other")
    return alice, bob, case_id, put["file_id"], bob_case
