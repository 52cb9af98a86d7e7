"""Model events (the seeds' "Model Events" tab): types, wording, and recording."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.orm import Session, sessionmaker

from rtserve.server.control.reconciler import VersionState, VersionView
from rtserve.server.engines.base import ReplicaObservation, ReplicaState
from rtserve.server.store import repo
from rtserve.server.store.models import Event

MODEL_SERVING_EVENT = "MODEL_SERVING_EVENT"  # routes: which version a stage URL answers from
MODEL_SERVICE_EVENT = "MODEL_SERVICE_EVENT"  # the endpoint: enabled, disabled, compute config changed
MODEL_VERSION_SERVING_EVENT = "MODEL_VERSION_SERVING_EVENT"  # one version: pending, ready, failed, stopped
CONTAINER_EVENT = "CONTAINER_EVENT"  # one replica: started, ready, crashed, failed to load

log = logging.getLogger("rtserve.events")


def new(model: str, kind: str, message: str, version: str | None, stage: str | None, now: float) -> Event:
    """An event to record, logged as it is made."""
    log.info("%s %s v%s: %s", kind, model, version or "-", message)
    return Event(
        registered_model_name=model,
        timestamp=int(now * 1000),
        type=kind,
        endpoint_version_name=version,
        stage=stage,
        message=message,
    )


def record_all(sessions: sessionmaker[Session], made: list[Event]) -> None:
    """Write events in one transaction. Blocks: run it in a thread, never on the event loop."""
    if not made:
        return
    with sessions.begin() as session:
        for event in made:
            repo.add_event(session=session, event=event)


async def record(
    sessions: sessionmaker[Session],
    model: str,
    kind: str,
    message: str,
    version: str | None,
    stage: str | None,
    now: float,
) -> None:
    """Record one event (an API change), off the event loop."""
    await asyncio.to_thread(record_all, sessions, [new(model, kind, message, version, stage, now)])


def version_message(view: VersionView) -> str:
    if view.state == VersionState.READY:
        return f"Version {view.version} is ready"
    if view.state == VersionState.FAILED:
        return f"Version {view.version} failed: {view.message}"
    return f"Version {view.version} is pending: {view.message}"


def replica_message(replica: ReplicaObservation, before: ReplicaState | None) -> str | None:
    name = replica.replica_id
    match replica.state:
        case ReplicaState.READY:
            return f"Replica {name} is ready"
        case ReplicaState.FAILED:
            return f"Replica {name} failed to load the model: {replica.message}"
        case ReplicaState.CRASHED:
            return f"Replica {name} crashed: {replica.message}"
        case ReplicaState.STOPPED if before is not ReplicaState.STOPPING:
            return f"Replica {name} stopped"
        case ReplicaState.STOPPING:
            return f"Replica {name} is stopping"
    return None


def scaling_message(before: VersionView, now: VersionView) -> str:
    if now.target_replicas == 0:
        return f"Version {now.version} scaled to zero: no request during the idle period"
    if before.target_replicas == 0:
        return f"Version {now.version} scaling up from zero to {now.target_replicas} replicas for a waiting request"
    direction = "up" if now.target_replicas > before.target_replicas else "down"
    return f"Version {now.version} scaling {direction} from {before.target_replicas} to {now.target_replicas} replicas"
