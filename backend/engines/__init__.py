"""Where replicas run, behind one small interface (`base.Engine`).

- `local.LocalEngine`: worker processes on this machine (the default).

An engine uses the worker (`backend.worker`: the replica's side); the worker never imports an
engine, so there is no import cycle between them.
"""

from rtserve.server.engines.base import (
    Engine,
    InvocationResult,
    NoReadyReplica,
    ReplicaObservation,
    ReplicaSpec,
    ReplicaState,
)
from rtserve.server.engines.local import LocalEngine

__all__ = [
    "Engine",
    "InvocationResult",
    "LocalEngine",
    "NoReadyReplica",
    "ReplicaObservation",
    "ReplicaSpec",
    "ReplicaState",
]
