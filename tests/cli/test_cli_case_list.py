"""`case list` reuses the membership log and grants it verified before while the server reports
the same head, fetches them again only for cases that changed, and still catches a rollback."""

from __future__ import annotations

import httpx
import pytest

from client import crypto
from client.vault import Vault

PASSPHRASE = "correct horse battery staple"


class CountingNetwork(httpx.BaseTransport):
    """Real HTTP to the test server, noting the method and path of every request."""

    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport()
        self.requests: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(f"{request.method} {request.url.path}")
        return self._inner.handle_request(request)

    def close(self) -> None:
        pass  # shared by several Api objects; the test closes it once

    def shutdown(self) -> None:
        self._inner.close()


@pytest.fixture
def network():
    net = CountingNetwork()
    yield net
    net.shutdown()


@pytest.fixture(autouse=True)
def _cheap_kdf(monkeypatch) -> None:
    monkeypatch.setenv("CASEVAULT_TEST_INSECURE_KDF", "1")


def test_unchanged_cases_cost_no_request_and_changed_ones_are_refetched(lawyers,
                                                                       network) -> None:
    alice, bob = lawyers("alice", "bob")
    ids = [alice.json("case", "create", f"R v Listing {i}")["case_id"] for i in range(3)]
    vault = Vault(str(alice.home), passphrase=PASSPHRASE, transport=network)
    first = vault.list_cases()
    assert sorted(c["case_id"] for c in first) == sorted(ids)

    network.requests.clear()
    assert vault.list_cases() == first
    assert network.requests == ["GET /v1/cases"]

    # The log of one case moves on (bob is added): only that case is fetched and replayed.
    alice.json("share", ids[1], bob.username, "--role", "viewer")
    network.requests.clear()
    assert vault.list_cases() == first
    assert sorted(network.requests) == sorted([
        "GET /v1/cases", f"GET /v1/cases/{ids[1]}/membership", f"GET /v1/cases/{ids[1]}/grants"])

    # Roles come from the replayed log, never from the server's listing.
    alice.server.sql("UPDATE case_members SET role = 'owner' WHERE case_id = :c AND user_id = :u",
                     {"c": ids[1], "u": bob.user_id})
    assert alice.server.sql("SELECT role FROM case_members WHERE case_id = :c AND user_id = :u",
                            {"c": ids[1], "u": bob.user_id}) == [("owner",)]
    bob_cases = Vault(str(bob.home), passphrase=PASSPHRASE, transport=network).list_cases()
    assert [(c["case_id"], c["role"]) for c in bob_cases] == [(ids[1], "viewer")]


def test_rolled_back_log_is_caught_by_case_list(lawyers, network) -> None:
    alice, bob = lawyers("alice", "bob")
    case_id = alice.json("case", "create", "R v Rollback")["case_id"]
    alice.json("share", case_id, bob.username)
    vault = Vault(str(alice.home), passphrase=PASSPHRASE, transport=network)
    assert [c["case_id"] for c in vault.list_cases()] == [case_id]

    # The server forgets that bob was added and reports the older head, consistently.
    ((head0,),) = alice.server.sql(
        "SELECT entry_hash FROM membership_entries WHERE case_id = :c AND seq = 0",
        {"c": case_id})
    alice.server.sql("DELETE FROM membership_entries WHERE case_id = :c AND seq = 1",
                     {"c": case_id})
    alice.server.sql("UPDATE cases SET membership_seq = 0, membership_head = :h WHERE id = :c",
                     {"h": head0, "c": case_id})
    with pytest.raises(crypto.IntegrityError, match="membership log"):
        vault.list_cases()
    proc = alice.fail("case", "list")
    assert proc.returncode == 3 and "rolled it back" in proc.stderr
