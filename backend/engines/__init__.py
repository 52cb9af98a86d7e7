"""Where replicas run, behind one small interface (`base.Engine`).

- `local.LocalEngine`: worker processes on this machine (the default).

`LocalEngine` is imported lazily: the worker imports `backend.engines.base` and must not pull in
the engine (which imports the worker's protocol module) while it is itself being imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rtserve.server.engines.base import (
    Engine,
    InvocationResult,
    NoReadyReplica,
    ReplicaObservation,
    ReplicaSpec,
    ReplicaState,
)

if TYPE_CHECKING:
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


def __getattr__(name: str) -> Any:
    if name == "LocalEngine":
        from rtserve.server.engines.local import LocalEngine

        return LocalEngine
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
