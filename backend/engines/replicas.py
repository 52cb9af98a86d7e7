"""What every engine keeps of a replica, and the table it answers from (local processes or Ray actors).

An engine subclasses `ReplicaRecord` with what it needs to reach its replicas, and `ReplicaTable`
for the parts of the `Engine` interface that only read or change that record: the observations,
a graceful stop, forgetting a dead replica, and the choice of a READY replica for a request.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from rtserve.server.engines.base import NoReadyReplica, ReplicaObservation, ReplicaSpec, ReplicaState

LIVE_STATES = (ReplicaState.STARTING, ReplicaState.READY, ReplicaState.STOPPING)
DEFAULT_STOP_GRACE = 10.0


@dataclass(eq=False, kw_only=True)
class ReplicaRecord:
    """One replica as its engine knows it; the engine's monitor task for it changes it."""

    spec: ReplicaSpec
    started_at: float  # epoch seconds
    pid: int | None = None
    state: ReplicaState = ReplicaState.STARTING
    message: str = "starting"
    in_flight: int = 0
    dispatched: int = 0  # breaks ties between equally busy replicas, so sequential load spreads
    stop_requested: asyncio.Event = field(default_factory=asyncio.Event)
    stop_grace: float = DEFAULT_STOP_GRACE
    monitor: asyncio.Task[None] | None = None
    usage: tuple[float, float] | None = None  # see ReplicaObservation.usage

    def observe(self) -> ReplicaObservation:
        return ReplicaObservation(
            replica_id=self.spec.replica_id,
            model_name=self.spec.model_name,
            version=self.spec.version,
            state=self.state,
            message=self.message,
            started_at=self.started_at,
            pid=self.pid,
            in_flight=self.in_flight,
            batching=(self.spec.max_batch_size, self.spec.max_batch_wait_ms),
            usage=self.usage,
        )

    def set_state(self, state: ReplicaState, message: str, force: bool = False) -> None:
        """Change the state; once stopping or gone, only `force` (the final word) changes it."""
        if not force and self.state not in (ReplicaState.STARTING, ReplicaState.READY):
            return
        self.state = state
        self.message = message

    def request_stop(self, grace: float) -> bool:
        """Mark the replica stopping, to drain for `grace` seconds; False if a stop was asked already."""
        if self.stop_requested.is_set():
            return False
        self.stop_grace = grace
        self.stop_requested.set()
        self.set_state(ReplicaState.STOPPING, "stopping")
        return True


R = TypeVar("R", bound=ReplicaRecord)


class ReplicaTable(Generic[R]):
    """The engine's replicas by id, and what the `Engine` interface answers from them alone."""

    _replicas: dict[str, R]  # set by the engine
    stop_timeout: float

    async def stop_replica(self, replica_id: str) -> None:
        """Stop gracefully: no new requests, in-flight ones finish (for `stop_timeout`), then it is gone.

        The replica is forgotten afterwards. Unknown ids are ignored, so a retried stop is harmless.
        """
        replica = self._replicas.get(replica_id)
        if replica is None:
            return
        replica.request_stop(self.stop_timeout)
        if replica.monitor is not None:
            await asyncio.shield(replica.monitor)
        self._replicas.pop(replica_id, None)

    def replicas(self) -> list[ReplicaObservation]:
        """A snapshot of every replica the engine knows, including FAILED and CRASHED ones."""
        return [replica.observe() for replica in self._replicas.values()]

    def forget(self, replica_id: str) -> None:
        """Drop a FAILED, CRASHED or STOPPED replica; its log stays readable through `read_logs`."""
        replica = self._replicas.get(replica_id)
        if replica is None:
            return
        if replica.state in LIVE_STATES:
            raise ValueError(f"replica {replica_id!r} is {replica.state}; stop it instead of forgetting it")
        self._replicas.pop(replica_id)

    def set_leading(self, leading: bool) -> None:
        """Engines whose replicas only this instance can reach always lead (the local engine)."""

    def _routable(self, replica: R) -> bool:
        """Whether a READY replica can take a request now (the Ray engine: its connection is up)."""
        return True

    def _pick(self, model_name: str, version: str) -> R:
        """The READY replica of the version with the fewest requests in flight."""
        ready = [
            replica
            for replica in self._replicas.values()
            if replica.state is ReplicaState.READY
            and replica.spec.model_name == model_name
            and replica.spec.version == version
            and self._routable(replica)
        ]
        if not ready:
            raise NoReadyReplica(f"no READY replica of version {version} of {model_name!r}")
        return min(ready, key=lambda replica: (replica.in_flight, replica.dispatched))
