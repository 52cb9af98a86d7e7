"""An in-memory engine for tests of the real app: replicas are records, not processes.

`start_replica` registers a replica STARTING. At each `replicas()` snapshot a STARTING replica either
fails (its (model, version) is in `failures`: FAILED with that message, as a loader error would), or
counts down `ready_after` snapshots and becomes READY (at the first snapshot by default). While
`hold` is set, STARTING replicas stay STARTING: a rollout that is "pending for a while" until the
test lets it go. Every knob can be changed while the app runs.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, replace

from rtserve.server.engines.base import (
    InvocationResult,
    NoReadyReplica,
    ReplicaObservation,
    ReplicaSpec,
    ReplicaState,
)


@dataclass
class _Replica:
    spec: ReplicaSpec
    observation: ReplicaObservation
    countdown: int


class FakeEngine:
    def __init__(
        self,
        *,
        ready_after: int = 0,
        failures: dict[tuple[str, str], str] | None = None,
        predictions: object = (0,),
        clock=time.time,  # type: ignore[no-untyped-def]
    ) -> None:
        self.ready_after = ready_after
        self.failures: dict[tuple[str, str], str] = dict(failures or {})
        self.hold = False
        self.predictions = predictions
        self.clock = clock
        self.started: list[ReplicaSpec] = []
        self.stopped: list[str] = []
        self.invocations: list[tuple[str, str, bytes]] = []
        self.closed = False
        self._replicas: dict[str, _Replica] = {}
        self._lock = threading.Lock()

    # -- knobs -----------------------------------------------------------------------------------
    def fail(self, model: str, version: str, message: str) -> None:
        """Replicas of the version starting from now on fail to load with `message`."""
        with self._lock:
            self.failures[(model, str(version))] = message

    def heal(self, model: str, version: str) -> None:
        with self._lock:
            self.failures.pop((model, str(version)), None)

    # -- the Engine protocol ---------------------------------------------------------------------
    async def start(self) -> None:
        self.closed = False

    async def close(self) -> None:
        with self._lock:
            self._replicas.clear()
        self.closed = True

    async def start_replica(self, spec: ReplicaSpec) -> None:
        observation = ReplicaObservation(
            replica_id=spec.replica_id,
            model_name=spec.model_name,
            version=spec.version,
            state=ReplicaState.STARTING,
            message="Loading the model",
            started_at=self.clock(),
            pid=None,
            in_flight=0,
        )
        with self._lock:
            self.started.append(spec)
            self._replicas[spec.replica_id] = _Replica(spec, observation, self.ready_after)

    async def stop_replica(self, replica_id: str) -> None:
        with self._lock:
            self.stopped.append(replica_id)
            self._replicas.pop(replica_id, None)

    def forget(self, replica_id: str) -> None:
        with self._lock:
            self._replicas.pop(replica_id, None)

    def set_leading(self, leading: bool) -> None:
        """The fake's replicas are this process's records: its instance always leads."""

    def replicas(self) -> list[ReplicaObservation]:
        with self._lock:
            for replica in self._replicas.values():
                if replica.observation.state is ReplicaState.STARTING:
                    self._advance(replica)
            return [replica.observation for replica in self._replicas.values()]

    def _advance(self, replica: _Replica) -> None:
        key = (replica.spec.model_name, replica.spec.version)
        if key in self.failures:
            replica.observation = replace(replica.observation, state=ReplicaState.FAILED, message=self.failures[key])
        elif not self.hold:
            if replica.countdown <= 0:
                replica.observation = replace(replica.observation, state=ReplicaState.READY, message="Ready")
            replica.countdown -= 1

    async def invoke(
        self, model_name: str, version: str, body: bytes, content_type: str, timeout: float
    ) -> InvocationResult:
        with self._lock:
            ready = [
                r
                for r in self._replicas.values()
                if (r.spec.model_name, r.spec.version) == (model_name, version)
                and r.observation.state is ReplicaState.READY
            ]
            if not ready:
                raise NoReadyReplica(f"no READY replica of {model_name} version {version}")
            self.invocations.append((model_name, version, body))
        payload = json.dumps({"predictions": list(self.predictions)}).encode()  # type: ignore[call-overload]
        return InvocationResult(200, payload)

    def read_logs(self, replica_id: str, max_bytes: int = 1_000_000) -> str:
        return f"fake replica {replica_id}: loaded\n"[-max_bytes:]
