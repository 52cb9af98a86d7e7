"""Rate-limit buckets in PostgreSQL: limiters of several instances count against one limit."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from rtserve.server.control.rate_limits import RateLimit, RateLimited, RateLimiter
from rtserve.server.store import db
from rtserve.server.store.rate_buckets import DatabaseBuckets

pytestmark = pytest.mark.postgres


@pytest.fixture
def limiters(postgres_url: str) -> Iterator[list[RateLimiter]]:
    engines = [db.make_engine(postgres_url) for _ in range(2)]
    clock = [1000.0]
    try:
        yield [RateLimiter(lambda: clock[0], DatabaseBuckets(db.session_factory(engine))) for engine in engines]
    finally:
        for engine in engines:
            engine.dispose()


def test_two_instances_hammering_one_limit_admit_exactly_its_calls_in_all(limiters: list[RateLimiter]):
    limits = (RateLimit(calls=30),)
    admitted: list[int] = []

    def hammer(limiter: RateLimiter) -> None:
        passed = 0
        for _ in range(40):
            try:
                limiter.admit("shared-ep", limits, "app")
                passed += 1
            except RateLimited:
                pass
        admitted.append(passed)

    threads = [threading.Thread(target=hammer, args=(limiter,)) for limiter in limiters for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sum(admitted) == 30, admitted


def test_a_per_token_limit_is_shared_too_and_forgetting_refills_it_everywhere(limiters: list[RateLimiter]):
    first, second = limiters
    limits = (RateLimit(calls=2, key="user"),)
    first.admit("per-token", limits, "alice")
    second.admit("per-token", limits, "alice")
    with pytest.raises(RateLimited, match="2 calls per minute for each token"):
        first.admit("per-token", limits, "alice")
    second.admit("per-token", limits, "bob")  # another token has its own bucket
    first.forget("per-token")
    second.admit("per-token", limits, "alice")
