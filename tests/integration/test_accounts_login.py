"""Login: both factors, one generic error, TOTP replay, recovery codes, rehash, rate limits."""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from fastapi.testclient import TestClient

from vault.api.app import create_app
from vault.auth.credentials import AuthEnv
from vault.auth.passwords import SecretHasher
from vault.protocol.encoding import b64e


def _events(app, action):
    with app.state.engine.connect() as conn:
        return conn.execute(
            sa.text("SELECT result, actor_id FROM audit_events WHERE action = :a ORDER BY id"),
            {"a": action},
        ).all()


def _login(client, user, code, auth_key=None, username=None):
    return client.post(
        "/v1/auth/login",
        json={
            "username": username or user.username,
            "auth_key": auth_key or user.auth_key,
            "totp": code,
        },
    )


def test_login_returns_a_session_and_the_wrapped_identity(client, make_user, clock):
    alice = make_user("alice")
    response = _login(client, alice, alice.totp_at(clock.now))
    assert response.status_code == 200, response.text
    data = response.json()
    assert len(data["token"]) >= 43  # 256 bits, base64url
    assert data["user_id"] == alice.user_id
    assert data["identity"] == alice.registration["identity"]
    assert data["identity_wrapped_kek"] == alice.registration["identity_wrapped_kek"]
    assert data["kdf"] == alice.registration["kdf"]
    me = client.get("/v1/me", headers={"Authorization": f"Bearer {data['token']}"})
    assert me.json()["username"] == "alice"


def test_every_failure_is_the_same_generic_error(client, app, make_user, clock):
    alice = make_user("alice")
    good = alice.totp_at(clock.now)
    failures = [
        _login(client, alice, good, auth_key=b64e(secrets.token_bytes(32))),
        _login(client, alice, good, username="nobody"),
        _login(client, alice, "123456" if good != "123456" else "654321"),
        _login(client, alice, good, auth_key="not base64 !"),
        _login(client, alice, "AAAA-BBBB-CCCC-DDDD"),
    ]
    bodies = set()
    for response in failures:
        assert response.status_code == 401
        body = response.json()
        bodies.add((body["code"], body["title"], body.get("detail")))
    assert bodies == {("invalid_credentials", "Invalid credentials", "Invalid credentials")}
    # Failures are in the audit table although every request ended in an error.
    assert len(_events(app, "account:login:failure")) == len(failures)
    # The wrong auth key did not burn the TOTP step: the code still works.
    assert _login(client, alice, good).status_code == 200


def test_a_totp_step_is_accepted_once(client, app, make_user, clock):
    alice = make_user("alice")
    code = alice.totp_at(clock.now)
    assert _login(client, alice, code).status_code == 200
    replay = _login(client, alice, code)
    assert replay.status_code == 401 and replay.json()["code"] == "invalid_credentials"
    assert [r[0] for r in _events(app, "account:totp:replay")] == ["failure"]


def test_a_b_a_is_refused(client, make_user, clock):
    alice = make_user("alice")
    code_a = alice.totp_at(clock.now)
    code_b = alice.totp_at(clock.now.timestamp() + 30)
    assert _login(client, alice, code_a).status_code == 200
    assert _login(client, alice, code_b).status_code == 200  # next step, within the window
    assert _login(client, alice, code_a).status_code == 401


def test_window_is_one_step_either_side(client, make_user, clock):
    alice = make_user("alice")
    clock.advance(300)
    now = clock.now.timestamp()
    old, stale = alice.totp_at(now - 30), alice.totp_at(now - 60)
    if stale not in {old, alice.totp_at(now), alice.totp_at(now + 30)}:
        assert _login(client, alice, stale).status_code == 401
    assert _login(client, alice, old).status_code == 200
    early = alice.totp_at(now + 60)
    if early not in {alice.totp_at(now), alice.totp_at(now + 30)}:
        assert _login(client, alice, early).status_code == 401
    assert _login(client, alice, alice.totp_at(now + 30)).status_code == 200


def test_concurrent_logins_with_one_code_exactly_one_wins(
    client, app, make_user, clock, together
):
    alice = make_user("alice")
    code = alice.totp_at(clock.now)
    results = together([lambda: _login(client, alice, code).status_code] * 6)
    assert sorted(results) == [200] + [401] * 5, results
    assert len(_events(app, "account:totp:replay")) == 5


def test_recovery_codes_work_once(client, make_user):
    alice = make_user("alice")
    code = alice.recovery_codes[3]
    assert _login(client, alice, code.lower().replace("-", " ")).status_code == 200
    assert _login(client, alice, code).status_code == 401
    assert _login(client, alice, alice.recovery_codes[4]).status_code == 200


def test_auth_key_hash_is_upgraded_when_parameters_rise(app_settings, client, make_user, clock):
    alice = make_user("alice")
    strong = create_app(app_settings.model_copy(update={"test_insecure_kdf": False}), clock=clock)
    with TestClient(strong) as strong_client:
        assert _login(strong_client, alice, alice.totp_at(clock.now)).status_code == 200
        with strong.state.engine.connect() as conn:
            stored = conn.execute(
                sa.text("SELECT auth_key_hash FROM users WHERE username='alice'")
            ).scalar_one()
    assert SecretHasher().needs_rehash(stored) is False
    clock.advance(30)
    assert _login(client, alice, alice.totp_at(clock.now)).status_code == 200


def test_auth_key_hash_is_not_replaced_by_a_login_failing_its_second_factor(
    app_settings, client, make_user, clock
):
    alice = make_user("alice")
    strong = create_app(app_settings.model_copy(update={"test_insecure_kdf": False}), clock=clock)
    query = sa.text("SELECT auth_key_hash FROM users WHERE username='alice'")
    with TestClient(strong) as strong_client:
        with strong.state.engine.connect() as conn:
            before = conn.execute(query).scalar_one()
        assert _login(strong_client, alice, "000000").status_code == 401
        with strong.state.engine.connect() as conn:
            after = conn.execute(query).scalar_one()
    assert SecretHasher().needs_rehash(before) and after == before


class _CountingHasher(SecretHasher):
    def __init__(self) -> None:
        super().__init__(insecure_test_parameters=True)
        self.verifications = 0

    def verify(self, stored_hash, secret):
        self.verifications += 1
        return super().verify(stored_hash, secret)


def _count_argon2(app) -> _CountingHasher:
    hasher = _CountingHasher()
    env = app.state.auth_env
    app.state.auth_env = AuthEnv(
        settings=env.settings, keys=env.keys, hasher=hasher, sessionmaker=env.sessionmaker
    )
    return hasher


def test_account_rate_limit_before_argon2_also_for_unknown_names(client, app, make_user, clock):
    alice = make_user("alice")
    hasher = _count_argon2(app)
    limit = app.state.settings.rate_limit_account_attempts
    for name in ("alice", "nobody"):
        hasher.verifications = 0
        for _ in range(limit):
            response = _login(client, alice, "000000", username=name)
            assert response.status_code == 401
        assert hasher.verifications == limit
        limited = _login(client, alice, alice.totp_at(clock.now), username=name)
        assert limited.status_code == 429
        assert limited.json()["code"] == "rate_limited"
        assert 0 < int(limited.headers["Retry-After"]) <= app.state.settings.rate_limit_window
        assert hasher.verifications == limit  # refused before any argon2 work
    assert len(_events(app, "account:login:ratelimited")) == 2
    # The limit is per account: bob is unaffected; after the window alice may try again.
    bob = make_user("bob")
    assert _login(client, bob, bob.totp_at(clock.now)).status_code == 200
    clock.advance(app.state.settings.rate_limit_window)
    assert _login(client, alice, alice.totp_at(clock.now)).status_code == 200


def test_address_rate_limit_spans_accounts_and_processes(app_settings, clock):
    settings = app_settings.model_copy(update={"rate_limit_address_attempts": 4})
    # Two app instances on one database stand for two server processes.
    first, second = create_app(settings, clock=clock), create_app(settings, clock=clock)
    with TestClient(first) as one, TestClient(second) as two:
        statuses = [
            (one if i % 2 else two).post(
                "/v1/auth/login",
                json={"username": f"user{i}", "auth_key": "x", "totp": "000000"},
            ).status_code
            for i in range(6)
        ]
    assert statuses == [401] * 4 + [429] * 2


def test_concurrent_attempts_cannot_overrun_the_limit(client, app, make_user, together):
    alice = make_user("alice")
    limit = app.state.settings.rate_limit_account_attempts
    results = together([lambda: _login(client, alice, "000000").status_code] * (limit + 8))
    assert (results.count(401), results.count(429)) == (limit, 8), results


def test_successful_login_clears_the_account_counter(client, app, make_user, clock):
    alice = make_user("alice")
    limit = app.state.settings.rate_limit_account_attempts
    for _ in range(limit - 1):
        _login(client, alice, "000000")
    assert _login(client, alice, alice.totp_at(clock.now)).status_code == 200
    for _ in range(limit - 1):
        assert _login(client, alice, "000000").status_code == 401


def test_rate_limiting_fails_closed(client, app, make_user, clock):
    alice = make_user("alice")
    with app.state.engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE rate_limits"))
    response = _login(client, alice, alice.totp_at(clock.now))
    assert response.status_code == 503
    assert response.json()["code"] == "unavailable"
    assert "Retry-After" in response.headers


class _PausingHasher(SecretHasher):
    """Records how many pooled database connections are checked out while a hash runs."""

    def __init__(self, engine) -> None:
        super().__init__(insecure_test_parameters=True)
        self.engine = engine
        self.checked_out: list[int] = []

    def verify(self, stored_hash, secret):
        self.checked_out.append(self.engine.pool.checkedout())
        return super().verify(stored_hash, secret)

    def hash(self, secret):
        self.checked_out.append(self.engine.pool.checkedout())
        return super().hash(secret)


def test_no_database_connection_is_held_while_argon2_runs(app, client, make_user, clock):
    """A login burst queues on the hash slots; each waiting login holding a pooled connection
    used to leave other users' requests waiting for one."""
    alice = make_user("alice")
    env = app.state.auth_env
    hasher = _PausingHasher(app.state.engine)
    app.state.auth_env = AuthEnv(
        settings=env.settings, keys=env.keys, hasher=hasher, sessionmaker=env.sessionmaker
    )
    assert _login(client, alice, alice.totp_at(clock.now)).status_code == 200
    clock.advance(30)
    assert _login(client, alice, "000000").status_code == 401
    assert hasher.checked_out == [0, 0]
    # Registration (two hashes) and activation (one) hold none either.
    hasher.checked_out.clear()
    make_user("bob")
    assert hasher.checked_out == [0, 0, 0]
