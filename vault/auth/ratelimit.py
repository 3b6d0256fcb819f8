"""Fixed-window attempt counters in the database, shared by every server process.

Each attempt is counted *before* the expensive work with one atomic conditional UPDATE, in its
own short transaction, so N concurrent attempts can never all slip under the limit. Any database
failure while counting refuses the attempt (fails closed).
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy import case, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from vault.db.models import RateLimitBucket
from vault.errors import RateLimited, ServiceUnavailable


def bucket_name(scope: str, key: str) -> str:
    """A bucket id that stores neither the raw name nor the raw address."""
    digest = hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()[:40]
    return f"{scope}:{digest}"


def _insert_if_missing(db: Session, bucket: str, window_start: int) -> None:
    dialect = db.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        raise ServiceUnavailable(f"rate limiting does not support the {dialect} database")
    db.execute(
        insert(RateLimitBucket)
        .values(bucket=bucket, window_start=window_start, count=0)
        .on_conflict_do_nothing(index_elements=["bucket"])
    )


def hit(
    factory: sessionmaker[Session], *, bucket: str, limit: int, window: int, now: datetime
) -> None:
    """Count one attempt in `bucket`; raise RateLimited once `limit` attempts used the window."""
    now_ts = int(now.timestamp())
    window_start = now_ts - now_ts % window
    fresh = RateLimitBucket.window_start < window_start
    try:
        with factory() as db, db.begin():
            _insert_if_missing(db, bucket, window_start)
            result = db.execute(
                update(RateLimitBucket)
                .where(RateLimitBucket.bucket == bucket)
                .where(fresh | (RateLimitBucket.count < limit))
                .values(
                    count=case((fresh, 1), else_=RateLimitBucket.count + 1),
                    window_start=case((fresh, window_start), else_=RateLimitBucket.window_start),
                )
                .execution_options(synchronize_session=False)
            )
            allowed = result.rowcount == 1
    except SQLAlchemyError as exc:
        raise ServiceUnavailable("attempt counting is unavailable; try again later") from exc
    if not allowed:
        raise RateLimited(retry_after=window_start + window - now_ts)


def reset(factory: sessionmaker[Session], *, bucket: str) -> None:
    """Forget the attempts of a bucket (after a successful login to that account)."""
    try:
        with factory() as db, db.begin():
            # Zero the row rather than delete it: a concurrent hit() that has just made sure the
            # row exists would otherwise find it gone, update nothing and refuse a fair attempt.
            db.execute(
                update(RateLimitBucket)
                .where(RateLimitBucket.bucket == bucket)
                .values(count=0)
                .execution_options(synchronize_session=False)
            )
    except SQLAlchemyError as exc:
        raise ServiceUnavailable("attempt counting is unavailable; try again later") from exc
