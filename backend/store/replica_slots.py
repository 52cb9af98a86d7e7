"""Replica slots claimed in the database: the fence between two leaders starting replicas (PostgreSQL).

Leaders overlap for a moment at a handover (control/leadership.py), and each may decide to start
the same replicas. So a replica of a version takes a *slot* before anything starts: one of the
version's `count` slots (its target number of replicas) for the replica settings it runs with, named
`<model>/<version>/<settings digest>/<index>`. A slot is a row with a unique key; `INSERT ... ON
CONFLICT DO NOTHING` gives it to one claimant, and the second leader, finding every slot of the
version held, starts nothing (it adopts the first one's replica when it finds its actor).

A slot is released when its replica is stopped or found dead. A claim left behind (its claimant died
before it could start or release) is *stale* once its replica is live on no engine that looked and it
is older than `grace` seconds (by the database's clock): the next claim of that slot takes it over,
and `sweep` deletes those no claim comes back for. The grace must cover the time an engine needs to
find a replica another instance just started (a few health intervals, and Ray placing the actor).

Blocking: the engine calls it in a worker thread. PostgreSQL only (one SQLite instance has no
second leader to fence).
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import timedelta

from sqlalchemy import ColumnElement, delete, func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, sessionmaker

from rtserve.server.store.models import ReplicaSlotRow

log = logging.getLogger(__name__)

DEFAULT_GRACE_SECONDS = 30.0
# The first slot that no row holds, claimed in one statement: a start's usual case (a concurrent claim
# of the same slot makes it claim nothing, and the slots are then gone through one by one).
_CLAIM_FIRST_FREE = text(
    """
    INSERT INTO replica_slots (slot, replica_id, holder)
    SELECT wanted.slot, :replica_id, :holder
    FROM unnest(CAST(:slots AS text[])) WITH ORDINALITY AS wanted(slot, position)
    WHERE NOT EXISTS (SELECT 1 FROM replica_slots held WHERE held.slot = wanted.slot)
    ORDER BY wanted.position
    LIMIT 1
    ON CONFLICT DO NOTHING
    RETURNING slot
    """
)


class SlotClaims:
    """The slots of one database, claimed by `holder` (this instance: shown in the table, not trusted)."""

    def __init__(self, sessions: sessionmaker[Session], holder: str, grace: float = DEFAULT_GRACE_SECONDS) -> None:
        self.sessions = sessions
        self.holder = holder[:200]
        self.grace = grace

    def claim(self, group: str, count: int, replica_id: str, live: Collection[str]) -> str | None:
        """The first free slot of `group` (`<model>/<version>/<settings digest>`) among `count` for
        `replica_id`, now held by it; None if every one is held. `live`: the replicas the caller's engine
        sees running, whose claims are never stale."""
        slots = [f"{group}/{index}" for index in range(count)]
        with self.sessions.begin() as db:
            first = db.execute(_CLAIM_FIRST_FREE, {"slots": slots, "replica_id": replica_id, "holder": self.holder})
            if (slot := first.scalar()) is not None:
                return str(slot)
            held = {
                slot: (holder, stale)
                for slot, holder, stale in db.execute(
                    select(ReplicaSlotRow.slot, ReplicaSlotRow.replica_id, self._stale().label("stale")).where(
                        ReplicaSlotRow.slot.in_(slots)
                    )
                )
            }
            for slot in slots:
                if slot in held:
                    holder, stale = held[slot]
                    if not stale or holder in live:
                        continue
                    # Conditional: of two leaders taking over one stale claim, one deletes it and claims.
                    gone = db.execute(
                        delete(ReplicaSlotRow).where(ReplicaSlotRow.slot == slot, ReplicaSlotRow.replica_id == holder)
                    )
                    if not gone.rowcount:  # type: ignore[attr-defined]
                        continue
                    log.info("Slot %s: the claim of replica %s is stale (no such replica); taken over", slot, holder)
                taken = db.execute(
                    insert(ReplicaSlotRow)
                    .values(slot=slot, replica_id=replica_id, holder=self.holder)
                    .on_conflict_do_nothing()
                    .returning(ReplicaSlotRow.slot)
                ).first()
                if taken is not None:
                    return slot
        return None

    def release(self, replica_id: str) -> None:
        """Free the slot of `replica_id` (stopped, or found dead); nothing if it holds none."""
        with self.sessions.begin() as db:
            db.execute(delete(ReplicaSlotRow).where(ReplicaSlotRow.replica_id == replica_id))

    def sweep(self, live: Collection[str]) -> int:
        """Delete the stale claims of replicas not in `live` (the caller's engine must know every live
        replica: it leads, and has looked for other instances' new ones); how many went."""
        with self.sessions.begin() as db:
            gone = db.execute(delete(ReplicaSlotRow).where(self._stale(), ReplicaSlotRow.replica_id.not_in(list(live))))
            return int(gone.rowcount)  # type: ignore[attr-defined]

    def held(self) -> dict[str, str]:
        """Every claim: slot -> replica id (for tests and operators)."""
        with self.sessions.begin() as db:
            return {
                slot: replica_id
                for slot, replica_id in db.execute(select(ReplicaSlotRow.slot, ReplicaSlotRow.replica_id))
            }

    def _stale(self) -> ColumnElement[bool]:
        return ReplicaSlotRow.claimed_at < func.now() - timedelta(seconds=self.grace)
