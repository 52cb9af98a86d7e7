"""Leadership on a real PostgreSQL database: one leader among candidates, takeover, the local engine kept alone,
and the traffic every instance reports added up."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from rtserve.server.control import instances
from rtserve.server.control.leadership import EngineConflict, Leadership
from rtserve.server.control.traffic import VersionTraffic
from rtserve.server.store import db

pytestmark = pytest.mark.postgres
HEARTBEAT = 0.2


async def _leaders(candidates: list[Leadership], timeout: float = 3.0) -> list[Leadership]:
    """The candidates that lead once exactly one does (or whatever leads after `timeout`)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while sum(c.leading for c in candidates) != 1 and loop.time() < deadline:
        await asyncio.sleep(0.05)
    return [c for c in candidates if c.leading]


def test_exactly_one_candidate_leads_and_another_takes_over_when_it_goes(postgres_url: str):
    async def scenario() -> None:
        candidates = [Leadership(postgres_url, HEARTBEAT, "ray") for _ in range(3)]
        for candidate in candidates:
            await candidate.start()
        try:
            first = await _leaders(candidates)
            assert len(first) == 1
            await asyncio.sleep(3 * HEARTBEAT)
            assert await _leaders(candidates) == first  # the lead stays put
            await first[0].close()
            rest = [c for c in candidates if c is not first[0]]
            second = await _leaders(rest)
            assert len(second) == 1 and await second[0].confirm()
        finally:
            for candidate in candidates:
                await candidate.close()

    asyncio.run(scenario())


def test_a_leader_whose_connection_is_cut_stops_leading_at_once_and_one_instance_leads_again(postgres_url: str):
    async def scenario() -> None:
        candidates = [Leadership(postgres_url, HEARTBEAT, "ray") for _ in range(2)]
        for candidate in candidates:
            await candidate.start()
        try:
            (leader,) = await _leaders(candidates)
            with psycopg.connect(postgres_url, autocommit=True) as admin:
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = 'rtserve-leadership' AND pid IN "
                    "(SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND mode = 'ExclusiveLock')"
                )
            assert not await leader.confirm()  # checked before acting: it no longer leads
            assert len(await _leaders(candidates)) == 1  # whichever reconnects first; the cut one may
        finally:
            for candidate in candidates:
                await candidate.close()

    asyncio.run(scenario())


def test_the_local_engine_is_refused_next_to_another_instance_and_the_other_way_round(postgres_url: str):
    async def scenario() -> None:
        ray_instance = Leadership(postgres_url, HEARTBEAT, "ray")
        await ray_instance.start()
        try:
            with pytest.raises(EngineConflict, match="Another rtserve backend already uses this database"):
                await Leadership(postgres_url, HEARTBEAT, "local").start()
        finally:
            await ray_instance.close()
        local = Leadership(postgres_url, HEARTBEAT, "local")
        await local.start()
        try:
            assert local.leading
            with pytest.raises(EngineConflict, match="A backend on the local engine already uses this database"):
                await Leadership(postgres_url, HEARTBEAT, "ray").start()
        finally:
            await local.close()

    asyncio.run(scenario())


def test_every_live_instances_traffic_is_added_up_and_a_silent_one_stops_counting(postgres_url: str):
    engine = db.make_engine(postgres_url)
    sessions = db.session_factory(engine)
    key = ("iris", "1")
    try:
        instances.exchange(sessions, "follower", 0.0, {key: VersionTraffic(3, 100.0)}, now=100.0, stale_after=5.0)
        total = instances.exchange(sessions, "leader", 0.0, {key: VersionTraffic(1, 90.0)}, now=101.0, stale_after=5.0)
        assert total[key] == VersionTraffic(4, 100.0)
        later = instances.exchange(sessions, "leader", 0.0, {key: VersionTraffic(0, 90.0)}, now=110.0, stale_after=5.0)
        assert later[key] == VersionTraffic(0, 90.0)  # the follower was last seen 10 s ago
        instances.leave(sessions, "leader")
        instances.leave(sessions, "follower")
    finally:
        engine.dispose()
