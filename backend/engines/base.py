"""The engine interface: where replicas of a served model version run.

The reconciler decides *what* should run; an engine makes it so and reports what it sees. An
engine owns its replicas' health checks and crash detection; the control plane only reads
`replicas()` and calls `start_replica` / `stop_replica`. The gateway calls `invoke`.

The interface is small on purpose, so that a Ray Serve engine can implement it as well as the
local-process one.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

# Defined by the worker (a replica builds and returns them); part of this interface too.
from rtserve.server.worker.types import InvocationResult, ReplicaSpec

__all__ = [
    "Engine",
    "InvocationResult",
    "NoReadyReplica",
    "ReplicaLost",
    "ReplicaObservation",
    "ReplicaSpec",
    "ReplicaState",
    "ReplicaUnreachable",
    "SlotTaken",
]


class ReplicaState(enum.StrEnum):
    STARTING = "STARTING"  # process spawned, model loading, not yet answering health checks
    READY = "READY"  # answered a health check; takes traffic
    FAILED = "FAILED"  # the model could not be loaded; `message` holds the loader's error
    CRASHED = "CRASHED"  # the process died after it was READY (killed, OOM, segfault)
    STOPPING = "STOPPING"  # asked to stop; drains in-flight requests
    STOPPED = "STOPPED"  # stopped on request


@dataclass(frozen=True)
class ReplicaObservation:
    replica_id: str
    model_name: str
    version: str
    state: ReplicaState
    message: str  # human-readable; the loader's error when FAILED, the exit reason when CRASHED
    started_at: float  # epoch seconds
    pid: int | None
    in_flight: int  # requests currently being processed or queued on this replica
    # (max_batch_size, max_batch_wait_ms) the replica runs with, if the engine reports it: a replica
    # the engine adopted (started by an earlier backend) is known to the control plane only by this.
    batching: tuple[int, float] | None = None
    # (CPU in percent of one core, resident memory in percent of its machine's) as the replica reported them at
    # its last health check, if its engine asks (Ray: its machine may not be the backend's); None: the metrics
    # read the process `pid` on this machine.
    usage: tuple[float, float] | None = None


class NoReadyReplica(Exception):
    """No replica of this version can take the request right now."""


class SlotTaken(ValueError):
    """Not started: every slot of the replica's version is held by another replica (another leader's start)."""


class ReplicaUnreachable(ConnectionError):
    """The request never reached the replica (its connection was already gone): safe to send elsewhere."""


class ReplicaLost(ConnectionError):
    """The replica went away after the request was sent: it may have run, and may be what killed it.

    Not safe to retry blindly: a request that crashes its replica would crash the next one too.
    """


class Engine(Protocol):
    async def start(self) -> None:
        """Prepare the engine (e.g. start a pre-loaded fork server). Called once."""

    async def close(self) -> None:
        """Stop every replica and release resources."""

    async def start_replica(self, spec: ReplicaSpec) -> None:
        """Spawn the replica and return at once; it shows as STARTING, then READY or FAILED.

        An engine that fences starts (Ray, with instances sharing a database) first claims one of the
        spec's slots, and raises SlotTaken if every one is held: nothing is started then."""

    async def stop_replica(self, replica_id: str) -> None:
        """Stop the replica gracefully (in-flight requests finish), then forget it."""

    def replicas(self) -> list[ReplicaObservation]:
        """A snapshot of every replica the engine knows, including FAILED and CRASHED ones."""

    def forget(self, replica_id: str) -> None:
        """Drop a FAILED/CRASHED/STOPPED replica from `replicas()` once the control plane handled it."""

    def set_leading(self, leading: bool) -> None:
        """Whether this backend instance leads (control/leadership.py). An engine whose replicas other
        instances can reach (Ray) follows while not leading: it routes to the replicas the leader
        started, found in the cluster, and never starts, stops or kills one. Called at every tick."""

    async def invoke(
        self, model_name: str, version: str, body: bytes, content_type: str, timeout: float
    ) -> InvocationResult:
        """Score on a READY replica of the version (least in-flight first).

        Raises NoReadyReplica if none is READY, TimeoutError past `timeout` seconds,
        ReplicaUnreachable (a ConnectionError) if the request could not be sent to the replica, and
        ReplicaLost (a ConnectionError) if the replica died after it was sent. A cancelled or timed
        out invocation is dropped by the replica if it was still queued there.
        """

    def read_logs(self, replica_id: str, max_bytes: int = 1_000_000) -> str:
        """The tail of one replica's log (also for replicas that FAILED or CRASHED)."""
