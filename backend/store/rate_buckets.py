"""Rate-limit buckets in the database, for instances sharing one PostgreSQL (control/rate_limits.py).

Each request's buckets are locked (and created full if missing), then read and changed inside one transaction that
holds their rows (`SELECT ... FOR UPDATE`), so two instances counting requests of one endpoint at
once take turns: a limit of N per minute admits N in all. A request with limits costs one short
transaction; one without limits none. Blocking: the limiter runs it off the event loop.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from sqlalchemy.orm import Session, sessionmaker

from rtserve.server.store import repo

FULL = float("inf")  # a new bucket: the limiter clamps it to the limit's calls


class DatabaseBuckets:
    blocking = True

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    @contextmanager
    def locked(self, endpoint: str, buckets: Sequence[str]) -> Iterator[dict[str, tuple[float, float]]]:
        with self.sessions.begin() as session:
            rows = repo.lock_rate_buckets(session=session, endpoint=endpoint, buckets=list(buckets))
            missing = [name for name in buckets if name not in {row.bucket for row in rows}]
            if missing:  # made full (a level above any limit) by whichever instance comes first, then locked
                repo.create_rate_buckets(session=session, endpoint=endpoint, buckets=missing, level=FULL)
                rows += repo.lock_rate_buckets(session=session, endpoint=endpoint, buckets=missing)
            held = {row.bucket: (row.level, row.since) for row in rows}
            yield held
            for row in rows:
                row.level, row.since = held[row.bucket]

    def forget(self, endpoint: str) -> None:
        with self.sessions.begin() as session:
            repo.delete_rate_buckets(session=session, endpoint=endpoint)
