"""Aggregated events (T30) at the service: exact counts under concurrency, on the database of
the run, with windows closing while events arrive and sweeps running beside them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from vault.db.engine import make_engine
from vault.protocol.events import Action
from vault.services.events import flush_closed_windows, record_aggregated_event

WINDOW = 60
USER, CASE = "a" * 32, "c" * 32
PER_THREAD = 60



@pytest.fixture
def clock(clock):
    """Aggregation and rate-limit windows are aligned to the epoch: start a few seconds into an
    hour, so that no test's steps straddle a window boundary by the chance of the wall clock."""
    clock.now = clock.now.replace(minute=0, second=5)
    return clock

@pytest.fixture
def sessions(app_settings):
    from sqlalchemy.orm import sessionmaker

    engine = make_engine(app_settings.database_url)
    yield sessionmaker(engine, expire_on_commit=False)
    engine.dispose()


def _listed(factory, when: datetime) -> bool:
    with factory() as db:
        recorded = record_aggregated_event(
            db, action=Action.FILE_LISTED, actor_id=USER, case_id=CASE, source="127.0.0.1",
            per_source=False, detail={"versions": 0}, window=WINDOW, now=when,
        )
        db.commit()
    return recorded is not None


def _entries(factory, action: str) -> list[dict]:
    """The logged bodies of `action` (format 2: the leaf is a skeleton naming its body)."""
    with factory() as db:
        rows = db.execute(
            sa.text("SELECT body FROM log_leaves WHERE body IS NOT NULL ORDER BY leaf_index")
        ).all()
    return [e for e in (json.loads(bytes(r.body)) for r in rows) if e["action"] == action]


def test_two_threads_listing_across_windows_count_every_listing_once(sessions, together):
    start = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    # Each thread lists in three windows; the other's events and sweeps run beside it.
    times = [start + timedelta(seconds=WINDOW * (i * 3 // PER_THREAD)) for i in range(PER_THREAD)]

    def hammer() -> int:
        return sum(_listed(sessions, when) for when in times)

    firsts = together([hammer, hammer])
    with sessions() as db:
        flush_closed_windows(db, now=start + timedelta(seconds=WINDOW * 3))
    # Exactly one first-of-window leaf per window, whichever thread got it.
    assert sum(firsts) == 3 == len(_entries(sessions, Action.FILE_LISTED))
    windows = _entries(sessions, Action.FILE_LISTED_WINDOW)
    # A listing that arrives after the other thread already opened the next window is counted
    # there (never dropped, never twice): the windows split the total, which is exact.
    assert sum(w["detail"]["count"] for w in windows) == 2 * PER_THREAD
    assert len(windows) == 3
    assert sorted(w["detail"]["window"]["start"] for w in windows) == [
        (start + timedelta(seconds=WINDOW * k)).strftime("%Y-%m-%dT%H:%M:%SZ") for k in range(3)
    ]
    assert all((w["actor_id"], w["case_id"]) == (USER, CASE) for w in windows)
    with sessions() as db:
        assert db.execute(sa.text("SELECT count(*) FROM event_aggregates")).scalar_one() == 0


def test_a_window_of_one_listing_adds_no_second_leaf(sessions):
    start = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    assert _listed(sessions, start)
    assert _listed(sessions, start + timedelta(seconds=WINDOW))  # closes the first window
    assert _entries(sessions, Action.FILE_LISTED_WINDOW) == []
    assert len(_entries(sessions, Action.FILE_LISTED)) == 2


def test_only_aggregated_actions_are_accepted(sessions):
    with sessions() as db, pytest.raises(ValueError):
        record_aggregated_event(
            db, action=Action.FILE_DOWNLOADED, window=WINDOW, now=datetime.now(UTC)
        )
