"""The Ray engine's side of slot claims: a replica starts only in a slot claimed in the shared database.

Two instances may both lead for a moment, so with claims (store/replica_slots.py) a replica whose
spec names a slot group is started only in a slot claimed first, before an actor is made or taken
from the warm pool: a warm actor keeps its pool name, so Ray's unique actor names alone cannot fence
a start. Only the leader releases or sweeps: a follower never starts or stops replicas.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection
from typing import Protocol

from rtserve.server.engines.base import ReplicaSpec, SlotTaken
from rtserve.server.engines.ray.connection import first_line

logger = logging.getLogger(__name__)


class SlotClaims(Protocol):
    """The slots replicas are started in, shared by the instances (store/replica_slots.py)."""

    def claim(self, group: str, count: int, replica_id: str, live: Collection[str]) -> str | None: ...

    def release(self, replica_id: str) -> None: ...

    def sweep(self, live: Collection[str]) -> int: ...


class Slots:
    """Claims, releases and sweeps the engine's slots; `claims` None: starts are not fenced (one instance).

    `leading` is set while the engine leads; `live()` gives the ids of its live replicas (their claims hold).
    """

    def __init__(self, claims: SlotClaims | None, leading: asyncio.Event, live: Callable[[], list[str]]) -> None:
        self._claims = claims
        self._leading = leading
        self._live_ids = live

    async def claim(self, spec: ReplicaSpec) -> str:
        """Claim a slot for `spec` (raise SlotTaken if none is free); "" if starts are not fenced."""
        if self._claims is None or not spec.slot_group:
            return ""
        slot = await asyncio.to_thread(
            self._claims.claim, spec.slot_group, spec.slots, spec.replica_id, self._live_ids()
        )
        if slot is None:
            raise SlotTaken(
                f"replica {spec.replica_id!r} not started: the {spec.slots} slot(s) of {spec.slot_group} are held"
            )
        logger.info("Replica %s claimed slot %s", spec.replica_id, slot)
        return slot

    async def release(self, replica_id: str) -> None:
        """Free the replica's slot (only the leader: a follower never starts or stops replicas)."""
        if self._claims is None or not self._leading.is_set():
            return
        try:
            await asyncio.to_thread(self._claims.release, replica_id)
        except Exception as exc:  # noqa: BLE001 - the claim goes stale, and is taken over after its grace
            logger.warning("Could not release the slot of replica %s: %s", replica_id, first_line(exc))

    async def sweep(self) -> None:
        """Delete the stale claims of slots no start comes back for (only the leader)."""
        if self._claims is None or not self._leading.is_set():
            return
        gone = await asyncio.to_thread(self._claims.sweep, self._live_ids())
        if gone:
            logger.info("Deleted %d stale slot claim(s)", gone)
