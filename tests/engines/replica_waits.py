"""Waiting on an engine's replicas, for the tests of every engine (local and Ray)."""

from __future__ import annotations

import asyncio
import time

from rtserve.server.engines.base import Engine, ReplicaObservation, ReplicaSpec, ReplicaState

SETTLED = {ReplicaState.READY, ReplicaState.FAILED, ReplicaState.CRASHED}


def observe(engine: Engine, replica_id: str) -> ReplicaObservation | None:
    return next((o for o in engine.replicas() if o.replica_id == replica_id), None)


async def wait_for_state(
    engine: Engine, replica_id: str, states: set[ReplicaState], timeout: float = 120.0
) -> ReplicaObservation:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        observation = observe(engine, replica_id)
        if observation is not None and observation.state in states:
            return observation
        await asyncio.sleep(0.01)
    raise AssertionError(f"{replica_id} did not reach {states}: {observe(engine, replica_id)}")


async def start_ready(engine: Engine, spec: ReplicaSpec) -> ReplicaObservation:
    await engine.start_replica(spec)
    observation = await wait_for_state(engine, spec.replica_id, SETTLED)
    assert observation.state is ReplicaState.READY, (observation, engine.read_logs(spec.replica_id))
    return observation
