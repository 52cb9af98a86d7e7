"""How the Ray engine takes over the replica actors of its namespace that this deployment started.

Actors outlive the backend (detached). The engine adopts the live replica actors of its namespace that
it can prove it started: each actor carries a seal (`seals`) of its identity, given at creation, which
model code running in the actor cannot forge for another identity. Adopted actors keep serving; nothing
is restarted or duplicated. An actor whose seal differs is another deployment's: it is left alone.

An engine that follows another instance's leader adopts the actors the leader starts as they appear.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from rtserve.server import paths
from rtserve.server.engines.base import ReplicaSpec, ReplicaState
from rtserve.server.engines.ray import actor as actor_module
from rtserve.server.engines.ray.connection import first_line, kill
from rtserve.server.engines.ray.logs import open_mirror
from rtserve.server.engines.ray.pool import PREFIX as WARM_PREFIX
from rtserve.server.engines.ray.seals import seal
from rtserve.server.engines.ray.supervision import Replica

logger = logging.getLogger(__name__)

_STATES = {
    actor_module.CREATED: ReplicaState.STARTING,
    actor_module.LOADING: ReplicaState.STARTING,
    actor_module.READY: ReplicaState.READY,
    actor_module.STOPPING: ReplicaState.STOPPING,
}


class Adoption:
    """Adopts the sealed replica actors of `namespace` that the engine does not know yet (`adopt`).

    - `ray`: the Ray module, connected; `key`: the seal key; `data_dir`: where adopted replicas' logs go.
    - `replicas`: the engine's replicas by id (read here: an adopted one is handed to `track`).
    - `leading`, `ping_timeout`, `stop_timeout`, `log_max_bytes`, `wall_clock`: as for `RayEngine`.
    - `reach(replica)`: connects to a READY replica (`Supervisor.reach`); `track(replica)`: the engine
      supervises it from now on; `release(replica_id)`: frees the slot of an actor killed here.
    """

    def __init__(
        self,
        ray: Any,
        *,
        namespace: str,
        key: bytes,
        data_dir: Path,
        replicas: Mapping[str, Replica],
        leading: asyncio.Event,
        ping_timeout: float,
        stop_timeout: float,
        log_max_bytes: int,
        wall_clock: Callable[[], float],
        reach: Callable[[Replica], Awaitable[str | None]],
        track: Callable[[Replica], None],
        release: Callable[[str], Awaitable[None]],
    ) -> None:
        self._ray = ray
        self.namespace = namespace
        self._key = key
        self.data_dir = data_dir
        self._replicas = replicas
        self._leading = leading
        self.ping_timeout = ping_timeout
        self.stop_timeout = stop_timeout
        self.log_max_bytes = log_max_bytes
        self._wall_clock = wall_clock
        self._reach = reach
        self._track = track
        self._release = release
        self._strangers: set[str] = set()  # actor names of the namespace that are not this deployment's
        # actor name -> its describe call: one that has not answered yet (a new actor whose process is still
        # starting) is asked once and looked at again next round, while the others are adopted
        self._describing: dict[str, asyncio.Task[tuple[Any, dict[str, Any] | None]]] = {}

    def close(self) -> None:
        """Cancel the describe calls still waiting for an answer."""
        for describing in self._describing.values():
            describing.cancel()
        self._describing.clear()

    async def adopt(self, patience: float | None = None) -> None:
        """Take over the live replica actors of this namespace that this deployment started (by their seal).

        Leading, an actor that was never given its model (its starter is gone) is killed: the controller
        starts what it needs. Following, it is followed: the leader is giving it its model.
        `patience`: how long to wait for the actors to describe themselves; those that have not answered by
        then are looked at in a later call (None: wait for every answer, up to `ping_timeout`).
        """
        ray = self._ray
        leading = self._leading.is_set()
        names = await asyncio.to_thread(ray.util.list_named_actors, True)
        known = {replica.actor_name for replica in self._replicas.values()}
        for entry in names:
            if not isinstance(entry, dict) or entry.get("namespace") != self.namespace:
                continue
            name = entry["name"]
            if name not in known and name not in self._strangers and name not in self._describing:
                self._describing[name] = asyncio.ensure_future(self._describe(name))
        if self._describing:
            await asyncio.wait(list(self._describing.values()), timeout=patience)
        found = {name: _described(name, task) for name, task in self._describing.items() if task.done()}
        for name in found:
            del self._describing[name]
        adopted = 0
        for name, (handle, info) in found.items():
            if handle is None or info is None or info.get("state") == actor_module.IDLE:
                continue  # gone, or a warm-pool actor (the pool adopts those)
            spec = adoptable(name, info, self._key, self.data_dir)
            if spec is not None and spec.replica_id in self._replicas:
                continue
            if spec is None:
                self._strangers.add(name)
                continue
            state = info.get("state")
            if state not in _STATES or (state == actor_module.CREATED and leading):
                if leading:
                    logger.info("Replica actor %s is %s; killing it (the controller starts what it needs)", name, state)
                    kill(ray, handle)
                    await self._release(spec.replica_id)  # its slot, for the start that replaces it
                continue
            replica = Replica(
                spec=spec,
                handle=handle,
                seal=str(info["seal"]),
                started_at=float(info.get("started_at") or self._wall_clock()),
                state=_STATES[state],
                message="adopted" if state == actor_module.READY else str(info.get("message", "")),
                pid=info.get("pid") if isinstance(info.get("pid"), int) else None,
                host=str(info.get("host", "")),
                adopted=True,
                actor_name=name,
                node_id=str(info.get("node_id", "")),
            )
            replica.learn_address(info)
            if replica.state is ReplicaState.READY and (unreachable := await self._reach(replica)) is not None:
                logger.warning("Adopted replica %s cannot be reached yet: %s", spec.replica_id, unreachable)
            if replica.state is ReplicaState.STOPPING and leading:
                replica.request_stop(self.stop_timeout)
            # A follower copies the whole log into its own data dir; a restarted leader has the start of it.
            replica.mirror = open_mirror(
                spec.replica_id, spec.log_path, self.log_max_bytes, int(info.get("copied") or 0) if leading else 0
            )
            if replica.mirror is not None:
                replica.mirror.note(f"adopted by a new engine ({replica.state})")
            self._track(replica)
            adopted += 1
        if adopted:
            logger.info("Adopted %d replica actor(s) in Ray namespace %r", adopted, self.namespace)

    async def _describe(self, name: str) -> tuple[Any, dict[str, Any] | None]:
        ray = self._ray
        try:
            handle = await asyncio.to_thread(ray.get_actor, name, self.namespace)
            method = handle.describe
        except (ValueError, AttributeError):  # gone since it was listed, or not a replica actor
            return None, None
        try:
            async with asyncio.timeout(self.ping_timeout):
                info = await method.remote()
        except (TimeoutError, ray.exceptions.RayError) as exc:
            logger.warning("Replica actor %s did not describe itself: %s", name, first_line(exc))
            return None, None
        return handle, info if isinstance(info, dict) else None


def adoptable(name: str, info: Mapping[str, Any], key: bytes, data_dir: Path) -> ReplicaSpec | None:
    """The spec of an actor this deployment started, rebuilt from what it says and proven by its seal."""
    replica_id = str(info.get("replica_id", ""))
    if (
        info.get("kind") != actor_module.KIND
        or not replica_id
        or not (name == replica_id or name.startswith(WARM_PREFIX))
    ):
        return None
    try:
        model_name, version = str(info["model_name"]), str(info["version"])
        batch_size, batch_wait = int(info["max_batch_size"]), float(info["max_batch_wait_ms"])
        log_path = str(paths.log_dir(data_dir, model_name, version) / f"{paths.segment(replica_id)}.log")
    except Exception:  # noqa: BLE001 - whatever it says, it is not adoptable
        return None
    spec = ReplicaSpec(
        replica_id, model_name, version, "", log_path, max_batch_size=batch_size, max_batch_wait_ms=batch_wait
    )
    if not hmac.compare_digest(seal(key, spec), str(info.get("seal", ""))):
        logger.info("Replica actor %s was not started by this deployment (its seal differs); left alone", name)
        return None
    return spec


def _described(name: str, describing: asyncio.Task[tuple[Any, dict[str, Any] | None]]) -> tuple[Any, Any]:
    """A finished describe call's (handle, info); (None, None) if it failed (asked again next round)."""
    if describing.cancelled():
        return None, None
    if (exc := describing.exception()) is not None:
        logger.warning("Could not describe replica actor %s: %s", name, first_line(exc))
        return None, None
    return describing.result()
