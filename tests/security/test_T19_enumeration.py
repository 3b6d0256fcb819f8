"""T19: an adversary probes which names have accounts (which lawyers, which of their clients).

Pre-login answers unknown names with a deterministic fake salt and the real-looking default
parameters; login fails with one generic answer whatever went wrong. Timing is compared too.
"""

from __future__ import annotations

import statistics
import time
from urllib.parse import parse_qs, urlparse

import pytest

from vault.protocol.encoding import b64d


def _prelogin(client, name):
    response = client.post("/v1/accounts/prelogin", json={"username": name})
    assert response.status_code == 200
    return response.json()


def _without_request_id(problem: dict) -> dict:
    return {k: v for k, v in problem.items() if k not in {"request_id", "instance"}}


def test_T19_prelogin_same_answer_for_unknown_names(client, make_user):
    make_user("alice")
    real = _prelogin(client, "alice")
    fake = _prelogin(client, "bob")
    assert set(fake) == set(real)
    assert (fake["ops"], fake["mem"]) == (real["ops"], real["mem"])
    assert len(b64d(fake["salt"])) == len(b64d(real["salt"])) == 16
    # Stable across calls (a random fake would give the game away by changing) ...
    assert _prelogin(client, "bob") == fake
    assert _prelogin(client, "alice") == real
    # ... and different per name, like real salts.
    assert _prelogin(client, "carol")["salt"] != fake["salt"]


def test_T19_prelogin_for_pending_account_looks_the_same(client, registration):
    body, _ = registration("dana")
    assert client.post("/v1/accounts/register", json=body).status_code == 201
    pending = _prelogin(client, "dana")
    unknown = _prelogin(client, "erin")
    assert set(pending) == set(unknown)


def _median_times(first, second, rounds: int) -> tuple[float, float]:
    """Median durations of two calls, interleaved so load from elsewhere hits both alike."""
    times: tuple[list[float], list[float]] = ([], [])
    pairs = ((first, times[0]), (second, times[1]))
    for round_ in range(rounds):
        # Alternate which goes first, so neither always pays for (or profits from) the other.
        for call, out in pairs if round_ % 2 == 0 else pairs[::-1]:
            start = time.perf_counter()
            call()
            out.append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1])


def _similar(a: float, b: float, floor: float) -> bool:
    # Generous: the machine is shared; a real leak (an argon2 run, a second query) is larger.
    return abs(a - b) < max(0.5 * min(a, b), floor)


def test_T19_prelogin_similar_timing(client, make_user):
    make_user("alice")
    for _ in range(5):  # warm up both paths
        _prelogin(client, "alice")
        _prelogin(client, "zed")
    known, unknown = _median_times(
        lambda: _prelogin(client, "alice"), lambda: _prelogin(client, "zed"), 40
    )
    # Both are one indexed look-up plus a small answer.
    assert _similar(known, unknown, 0.004), (known, unknown)


@pytest.fixture
def failures(client, make_user, clock):
    alice = make_user("alice")
    good_code = alice.totp_at(clock.now)
    cases = {
        "unknown name": {"username": "nobody", "auth_key": alice.auth_key, "totp": good_code},
        "wrong key": {"username": "alice", "auth_key": "A" * 43, "totp": good_code},
        "malformed key": {"username": "alice", "auth_key": "!!", "totp": good_code},
        "wrong code": {"username": "alice", "auth_key": alice.auth_key, "totp": "000000"},
        "empty code": {"username": "alice", "auth_key": alice.auth_key, "totp": ""},
    }
    return cases


def test_T19_login_one_generic_error(client, failures):
    answers = {}
    for name, body in failures.items():
        response = client.post("/v1/auth/login", json=body)
        answers[name] = (response.status_code, _without_request_id(response.json()))
    assert len(set(map(repr, answers.values()))) == 1, answers
    status, problem = next(iter(answers.values()))
    assert status == 401
    assert "alice" not in repr(problem) and "nobody" not in repr(problem)


@pytest.fixture
def roomy_client(app_settings, clock):
    """A server whose per-account limit leaves room for many timed attempts on one name (the
    limit has its own tests in T17; here every attempt must do the full work)."""
    from fastapi.testclient import TestClient

    from vault.api.app import create_app

    settings = app_settings.model_copy(update={"rate_limit_account_attempts": 10_000})
    app = create_app(settings, clock=clock)
    with TestClient(app) as test_client:
        yield app, test_client


class _Argon2Spy:
    """Stands in front of the real PasswordHasher and records the parameters of every hash it
    verifies against (a spy that passes everything through, not a replacement)."""

    def __init__(self, hasher) -> None:
        self.params: list[str] = []
        self._real = hasher._ph
        hasher._ph = self

    def __getattr__(self, name):
        return getattr(self._real, name)

    def verify(self, stored_hash, secret):
        # "$argon2id$v=19$m=...,t=...,p=..." without salt and digest.
        self.params.append(stored_hash.rsplit("$", 2)[0])
        return self._real.verify(stored_hash, secret)


def test_T19_login_similar_timing_for_unknown_and_known_names(roomy_client, registration, clock):
    app, client = roomy_client
    body, alice = registration("alice")
    enrolment = client.post("/v1/accounts/register", json=body)
    assert enrolment.status_code == 201, enrolment.text
    alice.totp_secret = parse_qs(urlparse(enrolment.json()["totp_uri"]).query)["secret"][0]
    activated = client.post("/v1/accounts/activate", json={
        "username": "alice", "auth_key": alice.auth_key, "totp": alice.totp_at(clock.now)})
    assert activated.status_code == 200, activated.text
    spy = _Argon2Spy(app.state.hasher)

    def attempt(name):
        def call():
            before = len(spy.params)
            response = client.post(
                "/v1/auth/login", json={"username": name, "auth_key": "A" * 43, "totp": "000000"}
            )
            assert response.status_code == 401, response.text
            per_attempt[name].append(spy.params[before:])

        return call

    per_attempt: dict[str, list[list[str]]] = {"alice": [], "nobody": []}
    for _ in range(3):  # warm up both paths
        attempt("alice")()
        attempt("nobody")()
    known, unknown = _median_times(attempt("alice"), attempt("nobody"), 30)
    # Structural witness, immune to load: every attempt, known name or not, verifies exactly one
    # argon2 hash of the same parameters (a dummy one for the unknown name), so the work is equal.
    calls = per_attempt["alice"] + per_attempt["nobody"]
    assert all(len(c) == 1 for c in calls), calls
    assert len({c[0] for c in calls}) == 1, calls
    # Timing witness: medians of many interleaved samples. Skipping argon2 for unknown names
    # would make them several times faster; a 1.6x bound leaves room for a loaded machine.
    assert max(known, unknown) < 1.6 * min(known, unknown) + 0.002, (known, unknown)
