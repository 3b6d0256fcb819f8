"""T18: a TOTP code seen over a shoulder, in a screenshot, or relayed by a phishing page is
used again, within its 30-second step or the +-1 step tolerance, or raced in parallel.

Each time step is accepted once per account, atomically; an older step than the last accepted
one is refused as well (no A-B-A).
"""

from __future__ import annotations

from datetime import timedelta

import httpx
import sqlalchemy as sa


def _login(client, user, code):
    return client.post(
        "/v1/auth/login", json={"username": user.username, "auth_key": user.auth_key, "totp": code}
    )


def test_T18_code_accepted_once(client, make_user, clock):
    alice = make_user("alice")
    code = alice.totp_at(clock.now)
    first = _login(client, alice, code)
    assert first.status_code == 200
    # The thief replays the same code a few seconds later, with the passphrase.
    clock.advance(5)
    replay = _login(client, alice, code)
    assert replay.status_code == 401
    # The replay looks like any wrong code: the thief learns nothing about the code's age.
    wrong = _login(client, alice, "000000" if code != "000000" else "111111")
    assert replay.json()["code"] == wrong.json()["code"] == "invalid_credentials"


def test_T18_older_step_after_newer_refused(client, make_user, clock):
    alice = make_user("alice")
    earlier = alice.totp_at(clock.now)
    later = alice.totp_at(clock.now + timedelta(seconds=30))  # the next step, within +-1
    assert _login(client, alice, later).status_code == 200
    # A code of the step before, still inside the tolerance window, captured earlier: refused.
    assert _login(client, alice, earlier).status_code == 401
    # And the later one once more (A-B-A style): refused.
    assert _login(client, alice, later).status_code == 401


def test_T18_concurrent_logins_with_one_code_exactly_one_wins(
    live_server, make_user, clock, together
):
    alice = make_user("alice")
    code = alice.totp_at(clock.now)
    # Six connections opened first, so the barrier releases six requests, not six handshakes.
    https = [httpx.Client(base_url=live_server, timeout=30) for _ in range(6)]
    try:
        results = together([lambda http=http: _login(http, alice, code).status_code
                            for http in https])
    finally:
        for http in https:
            http.close()
    assert sorted(results) == [200] + [401] * 5, results


def test_T18_replay_is_an_audit_event(client, make_user, clock, app_settings):
    alice = make_user("alice")
    code = alice.totp_at(clock.now)
    assert _login(client, alice, code).status_code == 200
    assert _login(client, alice, code).status_code == 401
    engine = sa.create_engine(app_settings.resolved_database_url())
    try:
        with engine.connect() as conn:
            actions = [r[0] for r in conn.execute(sa.text("SELECT action FROM audit_events"))]
    finally:
        engine.dispose()
    assert "account:totp:replay" in actions
