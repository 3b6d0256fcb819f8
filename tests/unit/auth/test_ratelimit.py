"""Database rate limits: atomic under concurrency, windowed, shared, failing closed."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from vault.auth import ratelimit
from vault.db.engine import make_engine, make_sessionmaker
from vault.errors import RateLimited, ServiceUnavailable

NOW = datetime(2026, 3, 1, 12, 0, 10, tzinfo=UTC)
WINDOW = 60


@pytest.fixture
def factory(database_url, migrated_template):
    migrated_template.copy_to(database_url)
    engine = make_engine(database_url)
    yield make_sessionmaker(engine)
    engine.dispose()


def test_limit_then_retry_after_then_new_window(factory):
    for _ in range(3):
        ratelimit.hit(factory, bucket="b", limit=3, window=WINDOW, now=NOW)
    with pytest.raises(RateLimited) as refused:
        ratelimit.hit(factory, bucket="b", limit=3, window=WINDOW, now=NOW)
    assert refused.value.retry_after == 50  # the window started at :00, it is :10
    ratelimit.hit(factory, bucket="other", limit=3, window=WINDOW, now=NOW)
    ratelimit.hit(factory, bucket="b", limit=3, window=WINDOW, now=NOW + timedelta(seconds=50))


def test_reset_forgets_attempts(factory):
    for _ in range(2):
        ratelimit.hit(factory, bucket="b", limit=2, window=WINDOW, now=NOW)
    with pytest.raises(RateLimited):
        ratelimit.hit(factory, bucket="b", limit=2, window=WINDOW, now=NOW)
    ratelimit.reset(factory, bucket="b")
    for _ in range(2):  # a whole new allowance, not one leftover attempt
        ratelimit.hit(factory, bucket="b", limit=2, window=WINDOW, now=NOW)


def test_concurrent_attempts_never_exceed_the_limit(database_url, factory):
    # A second engine stands for a second server process sharing the database.
    other_engine = make_engine(database_url)
    factories = [factory, make_sessionmaker(other_engine)]
    allowed, refused, errors = [], [], []
    barrier = threading.Barrier(12)

    def attempt(i: int) -> None:
        barrier.wait(60)  # a thread that never arrives fails the test rather than hanging it
        try:
            ratelimit.hit(factories[i % 2], bucket="hot", limit=5, window=WINDOW, now=NOW)
            allowed.append(i)
        except RateLimited:
            refused.append(i)
        except Exception as exc:  # recorded and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    other_engine.dispose()
    assert errors == []
    assert len(allowed) == 5
    assert len(refused) == 7


def test_fails_closed_when_the_store_is_broken(database_url, factory):
    engine = make_engine(database_url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE rate_limits"))
    engine.dispose()
    with pytest.raises(ServiceUnavailable):
        ratelimit.hit(factory, bucket="b", limit=3, window=WINDOW, now=NOW)


def test_bucket_names_do_not_store_the_raw_key():
    name = ratelimit.bucket_name("login-address", "203.0.113.7")
    assert "203.0.113.7" not in name
    assert name == ratelimit.bucket_name("login-address", "203.0.113.7")
