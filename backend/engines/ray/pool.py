"""The Ray engine's warm pool: idle actors on every node that have imported MLflow and wait for a model.

A new Ray worker process spends seconds importing MLflow and the flavor before it can load a model;
the local engine forks its replicas from a pre-loaded parent instead. The pool gives Ray the same
head start: `per_node` idle `ReplicaActor`s (no spec) on every alive node that can host a replica,
each detached and named `rtserve-warm-<node>-<random>` in the engine's namespace. A replica start
takes one (`take`), on the node the engine prefers, and the pool makes a new one in the background.

Only the leading engine tends the pool (creates, adopts, kills); a follower never touches it. Pool
actors carry a seal of their name, so a restarted backend or a new leader adopts the idle ones it
finds instead of leaking them, and kills the surplus over `per_node` (two leaders overlapping for a
heartbeat may both have made one). A warm actor reserves what a replica reserves: it is a replica
placed ahead of need.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from rtserve.server.engines.ray import actor as actor_module
from rtserve.server.engines.ray.connection import kill

logger = logging.getLogger(__name__)

PREFIX = "rtserve-warm-"


@dataclass(eq=False)
class WarmActor:
    name: str
    node_id: str
    handle: Any  # ray.actor.ActorHandle
    warm: bool = False  # its imports are done: it answered `describe`
    watch: asyncio.Task[None] | None = None


class WarmPool:
    """`per_node` idle actors per eligible node, tended every `interval` while `leading` is set.

    - `create(name, node_id)`: makes an idle actor pinned to that node (the engine's actor options).
    - `seal(name)`: the deployment's seal of a pool actor's name, to tell its own actors from others'.
    - `resources`: the custom resources each replica asks for; only nodes that have them get actors.
    """

    def __init__(
        self,
        ray: Any,
        *,
        namespace: str,
        per_node: int,
        create: Callable[[str, str], Any],
        seal: Callable[[str], str],
        leading: asyncio.Event,
        interval: float,
        ping_timeout: float,
        num_cpus: float,
        resources: Mapping[str, float] | None = None,
    ) -> None:
        self._ray = ray
        self.namespace = namespace
        self.per_node = per_node
        self._create = create
        self._seal = seal
        self._leading = leading
        self.interval = interval
        self.ping_timeout = ping_timeout
        self.num_cpus = num_cpus
        self.resources = dict(resources or {})
        self._actors: dict[str, WarmActor] = {}
        self._labels: dict[str, dict[str, str]] = {}  # node id -> its labels, as Ray reported them at the last tending
        self._passed: set[str] = set()  # pool-named actors that are not idle ones of this deployment: for good
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._tend_forever(), name="ray-warm-pool")

    def warm_actors(self) -> dict[str, str]:
        """The idle actors ready to be taken: name -> node id."""
        return {actor.name: actor.node_id for actor in self._actors.values() if actor.warm}

    def take(self, rank: Callable[[str], Any], node_labels: Mapping[str, str] | None = None) -> WarmActor | None:
        """Remove and return the warm actor on the lowest-ranked node that carries `node_labels` (None if
        none is warm there); the pool refills."""
        wanted = (node_labels or {}).items()
        warm = [
            actor
            for actor in self._actors.values()
            if actor.warm and wanted <= self._labels.get(actor.node_id, {}).items()
        ]
        if not warm:
            return None
        chosen = min(warm, key=lambda actor: rank(actor.node_id))
        self._forget(chosen)
        self._passed.add(chosen.name)  # taken: never idle again, even to a tending that described it before
        self._wake.set()
        return chosen

    async def close(self, *, kill: bool) -> None:
        """Stop tending; with `kill`, end the idle actors too (else they wait for the next leader)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        actors = list(self._actors.values())
        for actor in actors:
            self._forget(actor)
        if kill:
            await asyncio.gather(*(self._kill(actor) for actor in actors))

    # -- tending ---------------------------------------------------------------------------------
    async def _tend_forever(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval):
                    await self._wake.wait()
            self._wake.clear()
            if not self._leading.is_set():
                # Another instance leads and may take or kill these: learn them afresh if this one leads again.
                for actor in list(self._actors.values()):
                    self._forget(actor)
                continue
            try:
                await self._tend()
            except Exception as exc:  # noqa: BLE001 - the cluster out of reach for a moment: try again
                logger.warning("Could not tend the warm pool: %s", exc)

    async def _tend(self) -> None:
        """Adopt this deployment's idle actors, drop those of nodes gone, then bring each node to `per_node`."""
        nodes = await asyncio.to_thread(self._ray.nodes)
        eligible = {node["NodeID"] for node in nodes if node.get("Alive") and self._can_host(node)}
        self._labels = {node["NodeID"]: dict(node.get("Labels") or {}) for node in nodes if node["NodeID"] in eligible}
        await self._adopt()
        for actor in [actor for actor in self._actors.values() if actor.node_id not in eligible]:
            logger.info("Warm pool: node %s left; dropping actor %s", actor.node_id[:12], actor.name)
            self._forget(actor)
        for node_id in sorted(eligible):
            here = [actor for actor in self._actors.values() if actor.node_id == node_id]
            for _ in range(self.per_node - len(here)):
                self._add(node_id)
            surplus = sorted(here, key=lambda actor: actor.warm)[: max(0, len(here) - self.per_node)]
            for actor in surplus:
                logger.info("Warm pool: %s is one too many on node %s; killing it", actor.name, node_id[:12])
                self._forget(actor)
                await self._kill(actor)

    def _can_host(self, node: Mapping[str, Any]) -> bool:
        total = node.get("Resources") or {}
        needs = {"CPU": self.num_cpus, **self.resources}
        return all(float(total.get(name, 0.0)) >= amount for name, amount in needs.items() if amount)

    def _add(self, node_id: str) -> None:
        name = f"{PREFIX}{node_id[:16]}-{uuid.uuid4().hex[:6]}"
        try:
            handle = self._create(name, node_id)
        except Exception as exc:  # noqa: BLE001 - retried at the next tending
            logger.warning("Warm pool: could not create an actor on node %s: %s", node_id[:12], exc)
            return
        actor = WarmActor(name, node_id, handle)
        self._track(actor)
        logger.info("Warm pool: starting %s on node %s", name, node_id[:12])

    async def _adopt(self) -> None:
        listed = await asyncio.to_thread(self._ray.util.list_named_actors, True)
        names = [
            entry["name"]
            for entry in listed
            if isinstance(entry, dict)
            and entry.get("namespace") == self.namespace
            and str(entry.get("name", "")).startswith(PREFIX)
            and entry["name"] not in self._actors
            and entry["name"] not in self._passed
        ]
        for name, (handle, info) in zip(names, await asyncio.gather(*(self._describe(n) for n in names)), strict=True):
            if info is None or name in self._passed:
                continue  # gone, not placed yet, or taken while it was being described
            if info.get("state") != actor_module.IDLE or info.get("kind") != actor_module.KIND:
                self._passed.add(name)  # a replica now (the engine adopts those): never idle again
                continue
            if info.get("seal") != self._seal(name):
                self._passed.add(name)  # another deployment's
                continue
            actor = WarmActor(name, str(info.get("node_id", "")), handle, warm=True)
            self._track(actor)
            logger.info("Warm pool: adopted idle actor %s on node %s", name, actor.node_id[:12])

    async def _describe(self, name: str) -> tuple[Any, dict[str, Any] | None]:
        try:
            handle = await asyncio.to_thread(self._ray.get_actor, name, self.namespace)
            async with asyncio.timeout(self.ping_timeout):
                info = await handle.describe.remote()
        except (ValueError, AttributeError, TimeoutError, self._ray.exceptions.RayError):
            return None, None  # gone since listed, not a replica actor, or not placed yet
        return handle, info if isinstance(info, dict) else None

    def _track(self, actor: WarmActor) -> None:
        self._actors[actor.name] = actor
        actor.watch = asyncio.create_task(self._watch(actor), name=f"ray-warm:{actor.name}")

    async def _watch(self, actor: WarmActor) -> None:
        """Mark it warm once its imports are done; drop it from the pool if it dies while idle."""
        try:
            if not actor.warm:
                await actor.handle.describe.remote()
                actor.warm = True
                logger.info("Warm pool: %s is warm on node %s", actor.name, actor.node_id[:12])
            await actor.handle.wait_closed.remote()  # returns or raises only when the actor ends
        except self._ray.exceptions.RayError as exc:
            logger.warning("Warm pool: %s is gone: %s", actor.name, str(exc).strip().splitlines()[0][:200])
        if self._actors.get(actor.name) is actor:
            del self._actors[actor.name]
            self._wake.set()

    def _forget(self, actor: WarmActor) -> None:
        self._actors.pop(actor.name, None)
        if actor.watch is not None:
            actor.watch.cancel()

    async def _kill(self, actor: WarmActor) -> None:
        with contextlib.suppress(TimeoutError, self._ray.exceptions.RayError):
            async with asyncio.timeout(self.ping_timeout):
                await actor.handle.discard.remote()  # its work dir on the node
        kill(self._ray, actor.handle)
