"""Replica slots in PostgreSQL: two leaders claiming the same slots at once get each slot once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from rtserve.server.store import db
from rtserve.server.store.models import ReplicaSlotRow
from rtserve.server.store.replica_slots import SlotClaims

pytestmark = pytest.mark.postgres
GROUP = "iris/1/0123456789ab"


@pytest.fixture
def leaders(postgres_url: str) -> Iterator[list[SlotClaims]]:
    """Two instances' claims (two connection pools) on one database, stale after 0.5 s."""
    engines = [db.make_engine(postgres_url) for _ in range(2)]
    try:
        yield [SlotClaims(db.session_factory(engine), f"instance-{n}", grace=0.5) for n, engine in enumerate(engines)]
    finally:
        with db.session_factory(engines[0]).begin() as session:
            session.query(ReplicaSlotRow).delete()
        for engine in engines:
            engine.dispose()


def test_two_leaders_starting_the_same_replicas_at_once_claim_each_slot_once(leaders: list[SlotClaims]):
    start = threading.Barrier(2)
    claimed: dict[str, str | None] = {}

    def start_two(claims: SlotClaims, name: str) -> None:
        start.wait()
        for n in range(2):  # each leader decided on two replicas of a version that should run two
            claimed[f"{name}-{n}"] = claims.claim(GROUP, 2, f"{name}-{n}", live=())

    threads = [threading.Thread(target=start_two, args=(c, name)) for c, name in zip(leaders, "ab", strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    won = {replica: slot for replica, slot in claimed.items() if slot is not None}
    assert sorted(won.values()) == [f"{GROUP}/0", f"{GROUP}/1"]
    assert leaders[0].held() == {slot: replica for replica, slot in won.items()}


def test_a_released_slot_is_claimed_again_and_other_configs_have_slots_of_their_own(leaders: list[SlotClaims]):
    first, second = leaders
    assert first.claim(GROUP, 1, "a-0", live=()) == f"{GROUP}/0"
    assert second.claim(GROUP, 1, "b-0", live=()) is None
    assert second.claim("iris/1/fedcba987654", 1, "b-1", live=()) == "iris/1/fedcba987654/0"  # a rollout's new config
    first.release("a-0")
    assert second.claim(GROUP, 1, "b-0", live=()) == f"{GROUP}/0"


def test_a_stale_claim_is_taken_over_unless_its_replica_is_live(leaders: list[SlotClaims]):
    first, second = leaders
    assert first.claim(GROUP, 1, "a-0", live=()) == f"{GROUP}/0"
    assert second.claim(GROUP, 1, "b-0", live=()) is None  # fresh: another leader's start a moment ago
    time.sleep(0.6)
    assert second.claim(GROUP, 1, "b-0", live={"a-0"}) is None  # old, but its replica runs
    assert second.claim(GROUP, 1, "b-0", live=()) == f"{GROUP}/0"  # old, and no such replica: taken over
    assert first.held() == {f"{GROUP}/0": "b-0"}


def test_the_sweep_deletes_stale_claims_of_replicas_not_live_only(leaders: list[SlotClaims]):
    first, _ = leaders
    for index in range(3):
        assert first.claim(GROUP, 3, f"a-{index}", live=()) == f"{GROUP}/{index}"
    assert first.sweep(live=()) == 0  # none is stale yet
    time.sleep(0.6)
    assert first.claim(GROUP, 4, "a-3", live={"a-0", "a-1", "a-2"}) == f"{GROUP}/3"  # a fresh claim
    assert first.sweep(live={"a-1"}) == 2
    assert first.held() == {f"{GROUP}/1": "a-1", f"{GROUP}/3": "a-3"}
