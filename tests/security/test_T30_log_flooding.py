"""T30: flooding the permanent audit log with refused attempts and listings.

Every refused (429) login used to append a Merkle leaf, about 85 a second from one anonymous
client, and so did every file listing. Now both are counted per key and window: the first of a
window is a leaf at once, the window's total one more leaf when it has closed. Failures that
say something about an account (a wrong key, a replayed code) stay one leaf each.
A real uvicorn, real HTTP, the real client, the real audit tables.
"""

from __future__ import annotations

import json

import httpx
import pytest
import sqlalchemy as sa

from vault.api.app import create_app
from vault.protocol.encoding import b64e
from vault.protocol.events import Action
from vault.services.events import flush_closed_windows

ADDRESS_LIMIT = 100
FLOOD = 200
ROUNDS = 40



@pytest.fixture
def clock(clock):
    """Aggregation and rate-limit windows are aligned to the epoch: start a few seconds into an
    hour, so that no test's steps straddle a window boundary by the chance of the wall clock."""
    clock.now = clock.now.replace(minute=0, second=5)
    return clock

@pytest.fixture
def app_settings(app_settings):
    # The shipped per-address limit (the suite's default lifts it for its many logins).
    return app_settings.model_copy(update={"rate_limit_address_attempts": ADDRESS_LIMIT})


def _leaf_count(app) -> int:
    with app.state.engine.connect() as conn:
        return conn.execute(sa.text("SELECT count(*) FROM log_leaves")).scalar_one()


def _logged(app, action: str) -> list[dict]:
    """The entries of `action` as the log holds them: each format-2 leaf's body (the tree
    commits to it by hash), with the address the server recorded beside it."""
    with app.state.engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT l.body, e.source FROM log_leaves l JOIN audit_events e"
                " ON e.id = l.event_id WHERE l.body IS NOT NULL ORDER BY l.leaf_index"
            )
        ).all()
    entries = [{**json.loads(bytes(row.body)), "source": row.source} for row in rows]
    return [e for e in entries if e["action"] == action]


def _guess(http: httpx.Client, username: str) -> int:
    body = {"username": username, "auth_key": b64e(b"\x01" * 32), "totp": "000000"}
    return http.post("/v1/auth/login", json=body).status_code


def test_T30_flood_of_refused_logins_and_listings_adds_a_bounded_number_of_leaves(
    app, live_server, lawyer, app_settings, clock
):
    alice = lawyer("alice")
    case_id = alice.create_case("R v Flood")
    before = _leaf_count(app)
    with httpx.Client(base_url=live_server, timeout=30) as http:
        answers = [_guess(http, "alice") for _ in range(FLOOD)]
    # The attempts under the limits reach the key check; the rest are refused.
    account_limit = app_settings.rate_limit_account_attempts
    assert answers == [401] * account_limit + [429] * (FLOOD - account_limit)
    for _ in range(FLOOD):
        alice.ls(case_id)
    # 400 requests: each wrong key is a leaf, each refusing limit and the listing one more.
    assert _leaf_count(app) - before == account_limit + 2 + 1

    # Wrong keys say something about the account: one leaf each, never aggregated.
    failures = _logged(app, Action.LOGIN_FAILED)
    assert [e["detail"]["reason"] for e in failures] == ["bad_key"] * account_limit
    refused = _logged(app, Action.LOGIN_RATELIMITED)
    assert sorted(e["detail"]["limited_by"] for e in refused) == ["account", "address"]
    # The window closes; the next event (the lawyer's own listing) writes the totals.
    clock.advance(app_settings.event_aggregation_window)
    alice.ls(case_id)
    windows = _logged(app, Action.LOGIN_RATELIMITED_WINDOW)
    counts = {e["detail"]["limited_by"]: e["detail"]["count"] for e in windows}
    # The address limit refused every attempt past its budget (the lawyer's own activation
    # used one attempt of it); the account limit those in between.
    budget = ADDRESS_LIMIT - 1
    assert counts == {"address": FLOOD - budget, "account": budget - account_limit}
    assert sum(counts.values()) == answers.count(429)
    for window in windows:
        assert window["result"] == "failure"
        assert window["detail"]["window"]["start"] < window["detail"]["window"]["end"]
    (listed,) = _logged(app, Action.FILE_LISTED_WINDOW)
    assert listed["detail"]["count"] == FLOOD
    assert (listed["actor_id"], listed["case_id"]) == (alice.me.user_id, case_id)
    # The lawyer's verified audit view accepts the window leaves and shows them.
    actions = [e["action"] for e in alice.audit(case_id)]
    assert actions.count(Action.FILE_LISTED_WINDOW) == 1
    assert actions.count(Action.FILE_LISTED) == 2  # one per window


def test_T30_refusals_of_one_account_from_many_addresses_are_one_key(app_settings, clock):
    """A distributed guesser: every address is new, the refusals still count under the
    account, so the leaves stay bounded however many addresses it has."""
    from fastapi.testclient import TestClient

    settings = app_settings.model_copy(update={"rate_limit_address_attempts": 100_000})
    app = create_app(settings, clock=clock)
    account_limit = settings.rate_limit_account_attempts
    answers = []
    for i in range(60):
        with TestClient(app, client=(f"198.51.100.{i}", 40000)) as http:
            answers.append(_guess(http, "victim"))
    assert answers == [401] * account_limit + [429] * (60 - account_limit)
    (first,) = _logged(app, Action.LOGIN_RATELIMITED)
    assert first["detail"]["limited_by"] == "account"
    assert first["source"] == f"198.51.100.{account_limit}"  # the first refusal names its own
    clock.advance(settings.event_aggregation_window)
    with app.state.sessionmaker() as db:
        assert flush_closed_windows(db, now=clock.now) == 1
    (window,) = _logged(app, Action.LOGIN_RATELIMITED_WINDOW)
    assert window["detail"]["count"] == 60 - account_limit
    assert window["source"] is None  # many addresses: the window names none of them


def test_T30_gc_logs_the_count_of_a_flood_that_stopped(app_settings, clock):
    """A flood that stops has no next event to close its window: the collector writes it."""
    from fastapi.testclient import TestClient

    from vault.services.gc import collect_garbage

    app = create_app(app_settings, clock=clock)
    with TestClient(app, client=("203.0.113.7", 40000)) as http:
        attempts = app_settings.rate_limit_account_attempts + 5
        answers = [_guess(http, "nobody") for _ in range(attempts)]
    refused = answers.count(429)
    assert refused == 5
    clock.advance(app_settings.event_aggregation_window)
    with app.state.sessionmaker() as db:
        report = collect_garbage(db, app.state.blob_store, app_settings, now=clock.now)
    assert report.event_windows_logged == 1
    (window,) = _logged(app, Action.LOGIN_RATELIMITED_WINDOW)
    assert window["detail"]["count"] == refused


def test_T30_totp_replay_stays_one_leaf_each(app, client, make_user, clock):
    alice = make_user("alice")
    code = alice.totp_at(clock.now)
    body = {"username": "alice", "auth_key": alice.auth_key, "totp": code}
    assert client.post("/v1/auth/login", json=body).status_code == 200
    for _ in range(3):
        assert client.post("/v1/auth/login", json=body).status_code == 401
    replays = _logged(app, Action.TOTP_REPLAY)
    assert len(replays) == 3 and all(e["actor_id"] == alice.user_id for e in replays)


def test_T30_counts_exact_when_two_processes_hammer_across_a_window(
    app_settings, clock, together
):
    """Two app instances (two server processes) on one database list the same case and
    refuse the same address at once, in two windows: every event is counted exactly once."""
    from fastapi.testclient import TestClient

    settings = app_settings.model_copy(update={"rate_limit_address_attempts": 1})
    first, second = create_app(settings, clock=clock), create_app(settings, clock=clock)
    with TestClient(first) as one, TestClient(second) as two:
        assert _guess(one, "nobody") == 401  # the address's one attempt of the window

        def hammer(http: TestClient) -> list[int]:
            return [_guess(http, f"name{i}") for i in range(ROUNDS)]

        for _ in range(2):
            results = together([lambda: hammer(one), lambda: hammer(two)])
            assert all(status == 429 for batch in results for status in batch)
            clock.advance(settings.rate_limit_window)
            assert _guess(one, "nobody") == 401  # a fresh window of the rate limit
        clock.advance(settings.event_aggregation_window)
    with first.state.sessionmaker() as db:
        flush_closed_windows(db, now=clock.now)
    windows = _logged(first, Action.LOGIN_RATELIMITED_WINDOW)
    assert [w["detail"]["count"] for w in windows] == [2 * ROUNDS, 2 * ROUNDS]
    assert len(_logged(first, Action.LOGIN_RATELIMITED)) == 2  # one first per window
