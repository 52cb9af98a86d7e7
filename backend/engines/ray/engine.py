"""`RayEngine`: the engine interface (`backend.engines.base.Engine`) over Ray actors, one per replica.

Each replica is a detached, named actor (`ReplicaActor`, named after the replica id, in the engine's
namespace, never restarted by Ray) placed by Ray anywhere in the cluster. Ray is the control plane;
requests go straight to the replica: a READY actor serves the local replica's framed protocol on a
TCP port of its node, and the engine keeps one connection to it (`WorkerClient`, the local engine's
client), opened with the replica's secret. The engine routes each request to the READY replica of
its version with the fewest requests in flight, and one monitor task per replica follows it
(`supervision`): it ships the model's artifacts (`artifacts`), awaits the actor's `ready` (READY, or FAILED with the
loader's error), connects, polls `status` as the health check (which also copies the actor's log to
the backend: `logs`), and learns of the actor's death at once, through a call that only returns
when the actor stops (`wait_closed`) and through its connection dropping: CRASHED.

Actors outlive the backend (detached). At `start()` the engine adopts the live replica actors of
its namespace that it can prove it started (`adoption`): each actor carries a seal (`seals`: an HMAC
of its identity under a key kept in the data dir) given at creation, which model code running in the actor cannot forge
for another identity. Adopted actors keep serving; nothing is restarted or duplicated.

Several backend instances (one database, control/leadership.py) share one namespace. The engine of
an instance that does not lead *follows*: with `discover`, it adopts the actors the leader starts
as they appear (every `health_interval`), routes requests to them, and follows their state through
the health checks, but never ships, stops or kills one. When its instance becomes the leader, it
supervises the replicas it followed as its own (`set_leading`). Two instances may both lead for a
moment, so with `claims` a replica is started only in a slot claimed in the shared database first,
before an actor is made or taken from the pool (`slots`, store/replica_slots.py): a warm actor keeps its pool
name, so Ray's unique actor names alone cannot fence a start.

With `warm_actors_per_node`, a replica starts from an idle actor of the warm pool (`pool`) that has
imported MLflow already, on the node holding the fewest replicas of its version; the actor keeps its
pool name, so an actor's name is its replica id, or a pool name its `describe` maps to a replica.

This module holds the interface, the routing and the wiring of those parts. Ray is imported when the
engine starts (`connection`), never at import: the server runs without the `ray` extra.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from rtserve.server.engines.base import InvocationResult, ReplicaSpec, ReplicaUnreachable
from rtserve.server.engines.local.logs import LogBook
from rtserve.server.engines.ray import actor as actor_module
from rtserve.server.engines.ray import seals
from rtserve.server.engines.ray.adoption import Adoption
from rtserve.server.engines.ray.artifacts import Shipments
from rtserve.server.engines.ray.connection import connect, disconnect, first_line, kill
from rtserve.server.engines.ray.logs import open_mirror
from rtserve.server.engines.ray.placement import actor_options as placed_options
from rtserve.server.engines.ray.placement import unmet
from rtserve.server.engines.ray.pool import WarmActor, WarmPool
from rtserve.server.engines.ray.slots import SlotClaims, Slots
from rtserve.server.engines.ray.supervision import STOP_MARGIN, Replica, Supervisor
from rtserve.server.engines.replicas import LIVE_STATES, ReplicaTable
from rtserve.server.replica_logs import DEFAULT_MAX_BYTES
from rtserve.server.worker.limits import DEFAULT_MAX_INPUT_COLUMNS
from rtserve.server.worker.replica import DEFAULT_DRAIN_TIMEOUT

logger = logging.getLogger(__name__)

DEFAULT_NAMESPACE = "rtserve"
# How often the leader deletes the stale claims of slots no start comes back for.
SWEEP_SECONDS = 60.0
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")


class RayEngine(ReplicaTable[Replica]):
    """Runs replicas as Ray actors; implements `backend.engines.base.Engine`.

    - `address`: the Ray cluster (`ray.init(address=...)`: host:port of its head, or "auto" for the
      cluster started on this machine / RAY_ADDRESS). The backend's process becomes a Ray driver, so
      it must run where it can reach the cluster (on one of its nodes).
    - `data_dir`: the backend's data dir: the key that seals actor identities, and the logs of
      adopted replicas (`<data_dir>/logs/...`, as the controller lays them out).
    - `namespace`: the Ray namespace of this deployment's actors; two deployments sharing a cluster
      use two namespaces (an actor whose seal does not match is left alone in any case).
    - `health_interval`, `ping_timeout`: a READY replica's `status` is asked every `health_interval`;
      one that misses `supervision.MAX_FAILED_PINGS` in a row (each waiting `ping_timeout`) is killed and CRASHED.
    - `start_timeout`: a replica not READY this long after its start (no node could take it, or
      its model loads forever) is killed and FAILED.
    - `stop_timeout`, `log_max_bytes`, `max_input_columns`: as for the local engine.
    - `close_timeout`: how long `close()` lets replicas drain; with `keep_replicas_on_close`,
      `close()` leaves them running instead, for the next backend to adopt.
    - `replica_ports`: the TCP ports (first, last) a READY actor may listen on for requests, on its
      node's IP; None: any free port.
    - `num_cpus`, `max_concurrency`, `actor_options`: each actor's reservation, its concurrent
      calls, and any other `ActorClass.options()` (e.g. `resources` or a `scheduling_strategy` to
      place replicas on chosen nodes; without one, new actors are placed with `SPREAD`).
    - `init_options`: more `ray.init` arguments.
    - `warm_actors_per_node`: idle actors kept on every node for replicas to start from (`pool`); 0:
      none, every replica is a new actor. Off when `actor_options` has a `scheduling_strategy`.
    - `seal_key`: the key sealing actor identities, when it is not the data dir's (instances sharing
      a database share one); `discover`: adopt new actors of the namespace as they appear, not only
      at start (other instances start them).
    - `claims`: the slots shared with the other instances; with them, a replica whose spec names a slot
      group is started only in a slot it claims first (else SlotTaken), and its slot is released when
      the leader stops it or finds it dead. None: starts are not fenced (one instance).
    """

    def __init__(
        self,
        address: str | None,
        data_dir: str | os.PathLike[str],
        *,
        namespace: str = DEFAULT_NAMESPACE,
        health_interval: float = 1.0,
        ping_timeout: float = 5.0,
        start_timeout: float = 1800.0,
        stop_timeout: float = DEFAULT_DRAIN_TIMEOUT,
        close_timeout: float = 3.0,
        keep_replicas_on_close: bool = False,
        wall_clock: Callable[[], float] = time.time,
        log_max_bytes: int = DEFAULT_MAX_BYTES,
        max_input_columns: int = DEFAULT_MAX_INPUT_COLUMNS,
        num_cpus: float = 1.0,
        max_concurrency: int = 1000,
        actor_options: Mapping[str, Any] | None = None,
        init_options: Mapping[str, Any] | None = None,
        seal_key: bytes | None = None,
        discover: bool = False,
        warm_actors_per_node: int = 0,
        claims: SlotClaims | None = None,
        replica_ports: tuple[int, int] | None = None,
    ) -> None:
        self.address = address or "auto"
        self.data_dir = Path(data_dir)
        self.namespace = namespace
        self.health_interval = health_interval
        self.ping_timeout = ping_timeout
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.close_timeout = close_timeout
        self.keep_replicas_on_close = keep_replicas_on_close
        self.log_max_bytes = log_max_bytes
        self.max_input_columns = max_input_columns
        self.num_cpus = num_cpus
        self.max_concurrency = max_concurrency
        self.actor_options = dict(actor_options or {})
        self.init_options = dict(init_options or {})
        self._wall_clock = wall_clock
        self._ray: Any = None
        self._actor_class: Any = None
        self._key = seal_key or b""
        self.discover = discover
        self.warm_actors_per_node = warm_actors_per_node
        self.replica_ports = replica_ports
        self._pool: WarmPool | None = None
        self._leading = asyncio.Event()
        self._leading.set()
        self._slots = Slots(claims, self._leading, self._live_ids)
        self._discovery: asyncio.Task[None] | None = None
        self._replicas: dict[str, Replica] = {}
        self._monitors: set[asyncio.Task[None]] = set()
        self._logs = LogBook()
        self._shipments = Shipments()
        self._supervisor: Supervisor | None = None  # made by start(), with the connection
        self._adoption: Adoption | None = None

    # -- the engine interface ----------------------------------------------------------------------
    async def start(self) -> None:
        """Connect to the cluster (a Ray driver in this process) and adopt this deployment's live actors."""
        if self._ray is not None:
            return
        self._key = self._key or seals.seal_key(self.data_dir)
        # In this thread (Ray sets signal handlers from the main one); it blocks for a fraction of a second.
        self._ray = connect(self.address, self.namespace, self.init_options)
        self._actor_class = self._ray.remote(actor_module.ReplicaActor)
        self._supervisor = supervisor = Supervisor(
            self._ray,
            leading=self._leading,
            shipments=self._shipments,
            release=self._slots.release,
            health_interval=self.health_interval,
            ping_timeout=self.ping_timeout,
            start_timeout=self.start_timeout,
            stop_timeout=self.stop_timeout,
            shared=self.discover,
        )
        self._adoption = adoption = Adoption(
            self._ray,
            namespace=self.namespace,
            key=self._key,
            data_dir=self.data_dir,
            replicas=self._replicas,
            leading=self._leading,
            ping_timeout=self.ping_timeout,
            stop_timeout=self.stop_timeout,
            log_max_bytes=self.log_max_bytes,
            wall_clock=self._wall_clock,
            reach=supervisor.reach,
            track=self._track,
            release=self._slots.release,
        )
        await adoption.adopt()
        if self.discover:
            self._discovery = asyncio.create_task(self._discover(adoption), name="ray-discovery")
        self._start_pool()

    def warm_actors(self) -> dict[str, str]:
        """The warm pool's idle actors ready for a replica: actor name -> node id (none without a pool)."""
        return self._pool.warm_actors() if self._pool is not None else {}

    def set_leading(self, leading: bool) -> None:
        """Lead (supervise, stop and kill replicas, adopt and kill strays) or follow (only observe and route)."""
        if leading and not self._leading.is_set():
            logger.info("Leading: the replicas followed so far are supervised from now on")
            self._leading.set()
        elif not leading and self._leading.is_set():
            self._leading.clear()

    async def close(self) -> None:
        """Stop every replica (or, with `keep_replicas_on_close`, leave them running) and disconnect."""
        if self._ray is None:
            return
        if self._discovery is not None:
            self._discovery.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._discovery
            self._discovery = None
        if self._adoption is not None:
            self._adoption.close()
        if self._pool is not None:
            await self._pool.close(kill=self._leading.is_set() and not self.keep_replicas_on_close)
            self._pool = None
        if self.keep_replicas_on_close or not self._leading.is_set():
            for monitor in list(self._monitors):
                monitor.cancel()
            await asyncio.gather(*self._monitors, return_exceptions=True)
        else:
            for replica in list(self._replicas.values()):
                replica.request_stop(self.close_timeout)
            if self._monitors:
                _, stuck = await asyncio.wait(self._monitors, timeout=self.close_timeout + STOP_MARGIN + 2.0)
                for monitor in stuck:
                    monitor.cancel()
            for replica in self._replicas.values():
                kill(self._ray, replica.handle)
        for replica in self._replicas.values():
            if replica.mirror is not None:
                replica.mirror.close()
        self._replicas.clear()
        self._shipments.clear()
        self._ray = None
        disconnect()

    async def start_replica(self, spec: ReplicaSpec) -> None:
        """Create the actor (STARTING) and return; its monitor ships the model, then READY or FAILED.

        Raises ValueError if the replica exists, here or (by its name) anywhere in the namespace, or if
        this engine follows (only the leader starts replicas: the controller never asks a follower, and
        this refusal holds even if it did); SlotTaken if its slots are all held (before an actor is
        made or taken: two leaders for a moment start a slot once).
        """
        if spec.replica_id in self._replicas:
            raise ValueError(f"replica {spec.replica_id!r} already exists")
        if not self._leading.is_set():
            raise ValueError(f"replica {spec.replica_id!r} not started: this engine follows another instance's leader")
        if self._ray is None:
            await self.start()
        if not _SAFE_ID.match(spec.replica_id):
            raise ValueError(f"replica id {spec.replica_id!r} is not usable as an actor name")
        slot = await self._slots.claim(spec)
        try:
            await self._start(spec)
        except BaseException:
            if slot:
                await self._slots.release(spec.replica_id)
            raise

    async def stop_replica(self, replica_id: str) -> None:
        """As `ReplicaTable.stop_replica`; the slot is free for a new replica at once, while this one drains."""
        if replica_id in self._replicas:
            await self._slots.release(replica_id)
        await super().stop_replica(replica_id)

    async def _start(self, spec: ReplicaSpec) -> None:
        seal = seals.seal(self._key, spec)
        # A warm actor imported MLflow and its libraries already: too late for variables read at import time;
        # and it reserved no custom resource, so a replica that needs one is a new actor that reserves it.
        warm = None if spec.fresh_interpreter or spec.resources else await self._take_warm(spec, seal)
        if warm is not None:
            handle, actor_name, node_id = warm.handle, warm.name, warm.node_id
        else:
            # A taken name raises ValueError here: the fencing between engines.
            handle, actor_name, node_id = self._new_actor(spec.replica_id, spec, seal), spec.replica_id, ""
        replica = Replica(
            spec=spec, handle=handle, seal=seal, started_at=self._wall_clock(), actor_name=actor_name, node_id=node_id
        )
        replica.mirror = open_mirror(spec.replica_id, spec.log_path, self.log_max_bytes, 0)
        if warm is not None:
            replica.message = f"starting: loading the model on warm actor {actor_name}"
        elif spec.node_labels or spec.resources:
            # Ray keeps an actor no node can take pending without a word: say why, and what would place it.
            nodes = await asyncio.to_thread(self._ray.nodes)
            if (why := unmet(spec, nodes)) is not None:
                replica.message = f"starting: waiting for a node: {why} (`ray start --labels/--resources` adds one)"
        self._track(replica)

    # -- actors ------------------------------------------------------------------------------------
    def _live_ids(self) -> list[str]:
        return [r.spec.replica_id for r in self._replicas.values() if r.state in LIVE_STATES]

    def _new_actor(self, name: str, spec: ReplicaSpec | None, seal: str, **placement: Any) -> Any:
        """A detached actor named `name`: replica `spec`, or (None) an idle one for the warm pool."""
        options = {
            "name": name,
            "namespace": self.namespace,
            "lifetime": "detached",
            "max_restarts": 0,
            "max_concurrency": self.max_concurrency,
            "num_cpus": self.num_cpus,
            # Ray's default packs actors on the driver's node while it has room; replicas of a version
            # belong on different nodes, so that losing one node loses as few of them as it can.
            "scheduling_strategy": "SPREAD",
            **self.actor_options,
            **placement,
        }
        if spec is not None:
            options = placed_options(spec, options)
        return self._actor_class.options(**options).remote(
            spec,
            seal=seal,
            drain_timeout=self.stop_timeout,
            max_input_columns=self.max_input_columns,
            log_max_bytes=self.log_max_bytes,
            replica_ports=self.replica_ports,
        )

    # -- the warm pool -----------------------------------------------------------------------------
    def _start_pool(self) -> None:
        if self.warm_actors_per_node <= 0:
            return
        if "scheduling_strategy" in self.actor_options:
            logger.info("No warm pool: replicas are placed by their own scheduling strategy")
            return
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        def create(name: str, node_id: str) -> Any:
            strategy = NodeAffinitySchedulingStrategy(node_id, soft=False)
            return self._new_actor(name, None, self._warm_seal(name), scheduling_strategy=strategy)

        self._pool = WarmPool(
            self._ray,
            namespace=self.namespace,
            per_node=self.warm_actors_per_node,
            create=create,
            seal=self._warm_seal,
            leading=self._leading,
            interval=self.health_interval,
            ping_timeout=self.ping_timeout,
            num_cpus=self.num_cpus,
            resources=self.actor_options.get("resources"),
        )
        self._pool.start()

    async def _take_warm(self, spec: ReplicaSpec, seal: str) -> WarmActor | None:
        """A warm actor made replica `spec`, on the node with the fewest replicas of its version among those
        carrying its labels; None if none."""
        if self._pool is None:
            return None

        def rank(node_id: str) -> tuple[int, int]:
            here = [r for r in self._replicas.values() if r.node_id == node_id and r.state in LIVE_STATES]
            same = [r for r in here if (r.spec.model_name, r.spec.version) == (spec.model_name, spec.version)]
            return len(same), len(here)

        while (warm := self._pool.take(rank, spec.node_labels)) is not None:
            try:
                async with asyncio.timeout(self.ping_timeout):
                    if await warm.handle.take.remote(spec, seal):
                        logger.info(
                            "Replica %s starts on warm actor %s (node %s)",
                            spec.replica_id,
                            warm.name,
                            warm.node_id[:12],
                        )
                        return warm
            except (TimeoutError, self._ray.exceptions.RayError) as exc:
                logger.warning(
                    "Warm actor %s could not take replica %s: %s", warm.name, spec.replica_id, first_line(exc)
                )
                kill(self._ray, warm.handle)  # it may yet become the replica: no actor of unknown identity is left
        return None

    def _warm_seal(self, name: str) -> str:
        return seals.warm_seal(self._key, name)

    # -- routing -----------------------------------------------------------------------------------
    def read_logs(self, replica_id: str, max_bytes: int = 1_000_000) -> str:
        """The tail of the backend's copy of the replica's log (see `logs`)."""
        return self._logs.read(replica_id, max_bytes)

    async def invoke(
        self, model_name: str, version: str, body: bytes, content_type: str, timeout: float
    ) -> InvocationResult:
        """Score on the READY replica of the version with the fewest requests in flight, over its connection.

        A replica whose connection dropped is not chosen (its monitor finds out why, at once); one that drops
        during the request raises ReplicaLost (it was sent, and may have run).
        """
        replica = self._pick(model_name, version)
        client = replica.client
        if client is None or replica.is_dead:
            raise ReplicaUnreachable(f"replica {replica.spec.replica_id} is gone")
        replica.in_flight += 1
        replica.dispatched += 1
        try:
            return await client.invoke(body, content_type, timeout)
        finally:
            replica.in_flight -= 1

    def _routable(self, replica: Replica) -> bool:
        return replica.reachable and not replica.is_dead

    # -- supervision and adoption ------------------------------------------------------------------
    def _track(self, replica: Replica) -> None:
        self._logs.remember(replica.spec.replica_id, replica.spec.log_path)
        self._replicas[replica.spec.replica_id] = replica
        assert self._supervisor is not None
        replica.dead = asyncio.ensure_future(self._supervisor.death_of(replica))
        replica.monitor = asyncio.create_task(
            self._supervisor.supervise(replica), name=f"ray-replica:{replica.spec.replica_id}"
        )
        self._monitors.add(replica.monitor)
        replica.monitor.add_done_callback(self._monitors.discard)

    async def _discover(self, adoption: Adoption) -> None:
        """Adopt the actors other instances start, as they appear (`adoption`); leading, sweep stale claims."""
        swept_at = time.monotonic()
        while True:
            await asyncio.sleep(self.health_interval)
            try:
                await adoption.adopt(patience=self.health_interval)
            except Exception as exc:  # noqa: BLE001 - the cluster out of reach for a moment: try again
                logger.warning("Could not look for new replica actors: %s", first_line(exc))
                continue
            if time.monotonic() - swept_at >= SWEEP_SECONDS:
                swept_at = time.monotonic()
                try:
                    await self._slots.sweep()
                except Exception as exc:  # noqa: BLE001 - the database out of reach: the next sweep
                    logger.warning("Could not sweep stale slot claims: %s", first_line(exc))
