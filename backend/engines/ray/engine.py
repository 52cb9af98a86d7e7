"""`RayEngine`: the engine interface (`backend.engines.base.Engine`) over Ray actors, one per replica.

Each replica is a detached, named actor (`ReplicaActor`, named after the replica id, in the engine's
namespace, never restarted by Ray) placed by Ray anywhere in the cluster. Ray is the control plane;
requests go straight to the replica: a READY actor serves the local replica's framed protocol on a
TCP port of its node, and the engine keeps one connection to it (`WorkerClient`, the local engine's
client), opened with the replica's secret. The engine routes each request to the READY replica of
its version with the fewest requests in flight, and one monitor task per replica follows it: it
ships the model's artifacts (`artifacts`), awaits the actor's `ready` (READY, or FAILED with the
loader's error), connects, polls `status` as the health check (which also copies the actor's log to
the backend: `logs`), and learns of the actor's death at once, through a call that only returns
when the actor stops (`wait_closed`) and through its connection dropping: CRASHED.

Actors outlive the backend (detached). At `start()` the engine adopts the live replica actors of
its namespace that it can prove it started: each actor carries a seal (an HMAC of its identity under
a key kept in the data dir) given at creation, which model code running in the actor cannot forge
for another identity. Adopted actors keep serving; nothing is restarted or duplicated.

Several backend instances (one database, control/leadership.py) share one namespace. The engine of
an instance that does not lead *follows*: with `discover`, it adopts the actors the leader starts
as they appear (every `health_interval`), routes requests to them, and follows their state through
the health checks, but never ships, stops or kills one. When its instance becomes the leader, it
supervises the replicas it followed as its own (`set_leading`). Two instances may both lead for a
moment, so with `claims` a replica is started only in a slot claimed in the shared database first,
before an actor is made or taken from the pool (store/replica_slots.py): a warm actor keeps its pool
name, so Ray's unique actor names alone cannot fence a start.

With `warm_actors_per_node`, a replica starts from an idle actor of the warm pool (`pool`) that has
imported MLflow already, on the node holding the fewest replicas of its version; the actor keeps its
pool name, so an actor's name is its replica id, or a pool name its `describe` maps to a replica.

Ray is imported when the engine starts, never at import: the server runs without the `ray` extra.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from rtserve.server import paths
from rtserve.server.engines.base import (
    InvocationResult,
    ReplicaSpec,
    ReplicaState,
    ReplicaUnreachable,
    SlotTaken,
)
from rtserve.server.engines.local.client import WorkerClient
from rtserve.server.engines.local.logs import LogBook
from rtserve.server.engines.ray import actor as actor_module
from rtserve.server.engines.ray.artifacts import Shipment, pack
from rtserve.server.engines.ray.logs import LogMirror
from rtserve.server.engines.ray.placement import actor_options as placed_options
from rtserve.server.engines.ray.placement import unmet
from rtserve.server.engines.ray.pool import PREFIX as WARM_PREFIX
from rtserve.server.engines.ray.pool import WarmActor, WarmPool
from rtserve.server.engines.replicas import LIVE_STATES, ReplicaRecord, ReplicaTable
from rtserve.server.replica_logs import DEFAULT_MAX_BYTES
from rtserve.server.worker.limits import DEFAULT_MAX_INPUT_COLUMNS
from rtserve.server.worker.replica import DEFAULT_DRAIN_TIMEOUT

logger = logging.getLogger(__name__)

DEFAULT_NAMESPACE = "rtserve"
MAX_FAILED_PINGS = 3
# With other instances routing to the replicas: health checks they get to see a replica STOPPING before it stops.
HANDOFF_CHECKS = 2
# Beyond a stop's grace: the time a stop call may take to come back before the actor is killed anyway.
STOP_MARGIN = 5.0
# The key that seals the identity of the actors this deployment starts (in the data dir, mode 0600).
SEAL_KEY_FILE = "ray-engine.key"
# How often the leader deletes the stale claims of slots no start comes back for.
SWEEP_SECONDS = 60.0
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")

_STATES = {
    actor_module.CREATED: ReplicaState.STARTING,
    actor_module.LOADING: ReplicaState.STARTING,
    actor_module.READY: ReplicaState.READY,
    actor_module.STOPPING: ReplicaState.STOPPING,
}


class SlotClaims(Protocol):
    """The slots replicas are started in, shared by the instances (store/replica_slots.py)."""

    def claim(self, group: str, count: int, replica_id: str, live: Collection[str]) -> str | None: ...

    def release(self, replica_id: str) -> None: ...

    def sweep(self, live: Collection[str]) -> int: ...


@dataclass(eq=False, kw_only=True)
class _Replica(ReplicaRecord):
    """One replica actor and what the engine knows of it; its monitor task changes it."""

    handle: Any  # ray.actor.ActorHandle
    seal: str
    actor_name: str = ""  # the replica id, or the name of the warm-pool actor it started from
    node_id: str = ""
    message: str = "starting: waiting for Ray to place the actor"
    host: str = ""
    adopted: bool = False
    reported: str = ""  # the actor's own state at the last health check
    dead: asyncio.Future[str] | None = None  # resolves to the reason once the actor is known dead
    mirror: LogMirror | None = None
    address: tuple[str, int] | None = None  # where the READY actor serves requests (its node's IP, a port)
    secret: str = ""  # what a connection to `address` must present (the actor tells it through Ray)
    client: WorkerClient | None = None  # the connection requests go over

    @property
    def reachable(self) -> bool:
        return self.client is not None and self.client.connected

    def learn_address(self, info: Mapping[str, Any]) -> None:
        """Where the actor says it serves (`describe`), and its secret."""
        address = info.get("address")
        if isinstance(address, list | tuple) and len(address) == 2:
            self.address = (str(address[0]), int(address[1]))
        self.secret = str(info.get("secret") or self.secret)

    @property
    def is_dead(self) -> bool:
        return self.dead is not None and self.dead.done()


class RayEngine(ReplicaTable[_Replica]):
    """Runs replicas as Ray actors; implements `backend.engines.base.Engine`.

    - `address`: the Ray cluster (`ray.init(address=...)`: host:port of its head, or "auto" for the
      cluster started on this machine / RAY_ADDRESS). The backend's process becomes a Ray driver, so
      it must run where it can reach the cluster (on one of its nodes).
    - `data_dir`: the backend's data dir: the key that seals actor identities, and the logs of
      adopted replicas (`<data_dir>/logs/...`, as the controller lays them out).
    - `namespace`: the Ray namespace of this deployment's actors; two deployments sharing a cluster
      use two namespaces (an actor whose seal does not match is left alone in any case).
    - `health_interval`, `ping_timeout`: a READY replica's `status` is asked every `health_interval`;
      one that misses `MAX_FAILED_PINGS` in a row (each waiting `ping_timeout`) is killed and CRASHED.
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
        self._claims = claims
        self.replica_ports = replica_ports
        self._pool: WarmPool | None = None
        self._leading = asyncio.Event()
        self._leading.set()
        self._strangers: set[str] = set()  # actor names of the namespace that are not this deployment's
        self._discovery: asyncio.Task[None] | None = None
        # actor name -> its describe call: one that has not answered yet (a new actor whose process is still
        # starting) is asked once and looked at again next round, while the others are adopted
        self._describing: dict[str, asyncio.Task[tuple[Any, dict[str, Any] | None]]] = {}
        self._replicas: dict[str, _Replica] = {}
        self._monitors: set[asyncio.Task[None]] = set()
        self._logs = LogBook()
        # model_uri -> (the packing, how many replicas are loading from it)
        self._shipments: dict[str, tuple[asyncio.Task[Shipment], int]] = {}

    # -- the engine interface ----------------------------------------------------------------------
    async def start(self) -> None:
        """Connect to the cluster (a Ray driver in this process) and adopt this deployment's live actors."""
        if self._ray is not None:
            return
        self._key = self._key or _seal_key(self.data_dir)
        # In this thread (Ray sets signal handlers from the main one); it blocks for a fraction of a second.
        self._ray = _connect(self.address, self.namespace, self.init_options)
        self._actor_class = self._ray.remote(actor_module.ReplicaActor)
        await self._adopt()
        if self.discover:
            self._discovery = asyncio.create_task(self._discover(), name="ray-discovery")
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
        for describing in self._describing.values():
            describing.cancel()
        self._describing.clear()
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
                self._kill(replica)
        for replica in self._replicas.values():
            if replica.mirror is not None:
                replica.mirror.close()
        self._replicas.clear()
        self._shipments.clear()
        self._ray = None
        _disconnect()

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
        slot = await self._claim(spec)
        try:
            await self._start(spec)
        except BaseException:
            if slot:
                await self._release(spec.replica_id)
            raise

    async def stop_replica(self, replica_id: str) -> None:
        """As `ReplicaTable.stop_replica`; the slot is free for a new replica at once, while this one drains."""
        if replica_id in self._replicas:
            await self._release(replica_id)
        await super().stop_replica(replica_id)

    async def _start(self, spec: ReplicaSpec) -> None:
        seal = self._seal(spec)
        # A warm actor imported MLflow and its libraries already: too late for variables read at import time;
        # and it reserved no custom resource, so a replica that needs one is a new actor that reserves it.
        warm = None if spec.fresh_interpreter or spec.resources else await self._take_warm(spec, seal)
        if warm is not None:
            handle, actor_name, node_id = warm.handle, warm.name, warm.node_id
        else:
            # A taken name raises ValueError here: the fencing between engines.
            handle, actor_name, node_id = self._new_actor(spec.replica_id, spec, seal), spec.replica_id, ""
        replica = _Replica(
            spec=spec, handle=handle, seal=seal, started_at=self._wall_clock(), actor_name=actor_name, node_id=node_id
        )
        replica.mirror = self._open_mirror(spec.replica_id, spec.log_path, 0)
        if warm is not None:
            replica.message = f"starting: loading the model on warm actor {actor_name}"
        elif spec.node_labels or spec.resources:
            # Ray keeps an actor no node can take pending without a word: say why, and what would place it.
            nodes = await asyncio.to_thread(self._ray.nodes)
            if (why := unmet(spec, nodes)) is not None:
                replica.message = f"starting: waiting for a node: {why} (`ray start --labels/--resources` adds one)"
        self._track(replica)

    # -- slots -------------------------------------------------------------------------------------
    async def _claim(self, spec: ReplicaSpec) -> str:
        """Claim a slot for `spec` (raise SlotTaken if none is free); "" if starts are not fenced."""
        if self._claims is None or not spec.slot_group:
            return ""
        slot = await asyncio.to_thread(
            self._claims.claim, spec.slot_group, spec.slots, spec.replica_id, self._live_ids()
        )
        if slot is None:
            raise SlotTaken(
                f"replica {spec.replica_id!r} not started: the {spec.slots} slot(s) of {spec.slot_group} are held"
            )
        logger.info("Replica %s claimed slot %s", spec.replica_id, slot)
        return slot

    async def _release(self, replica_id: str) -> None:
        """Free the replica's slot (only the leader: a follower never starts or stops replicas)."""
        if self._claims is None or not self._leading.is_set():
            return
        try:
            await asyncio.to_thread(self._claims.release, replica_id)
        except Exception as exc:  # noqa: BLE001 - the claim goes stale, and is taken over after its grace
            logger.warning("Could not release the slot of replica %s: %s", replica_id, _first_line(exc))

    async def _sweep(self) -> None:
        if self._claims is None or not self._leading.is_set():
            return
        gone = await asyncio.to_thread(self._claims.sweep, self._live_ids())
        if gone:
            logger.info("Deleted %d stale slot claim(s)", gone)

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
                    "Warm actor %s could not take replica %s: %s", warm.name, spec.replica_id, _first_line(exc)
                )
                self._kill_handle(warm.handle)  # it may yet become the replica: no actor of unknown identity is left
        return None

    def _warm_seal(self, name: str) -> str:
        return hmac.new(self._key, json.dumps(["warm", name]).encode(), hashlib.sha256).hexdigest()

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

    def _routable(self, replica: _Replica) -> bool:
        return replica.reachable and not replica.is_dead

    # -- routing -----------------------------------------------------------------------------------
    # -- one replica's life ------------------------------------------------------------------------
    def _track(self, replica: _Replica) -> None:
        self._logs.remember(replica.spec.replica_id, replica.spec.log_path)
        self._replicas[replica.spec.replica_id] = replica
        replica.dead = asyncio.ensure_future(self._death_of(replica))
        replica.monitor = asyncio.create_task(self._supervise(replica), name=f"ray-replica:{replica.spec.replica_id}")
        self._monitors.add(replica.monitor)
        replica.monitor.add_done_callback(self._monitors.discard)

    async def _death_of(self, replica: _Replica) -> str:
        """Resolves with the reason as soon as the actor is dead (a call that only returns when it stops)."""
        while True:
            try:
                await replica.handle.wait_closed.remote()
            except self._ray.exceptions.ActorDiedError as exc:
                return _death_reason(exc)
            except self._ray.exceptions.ActorUnavailableError:
                await asyncio.sleep(self.health_interval)  # unreachable for now (a network hiccup): ask again
                continue
            except self._ray.exceptions.RayError as exc:
                return _first_line(exc)
            # Stopped on request; the actor is killed next. Wait for that to be seen, without a call.
            replica.reported = actor_module.STOPPED
            await asyncio.Future()

    async def _supervise(self, replica: _Replica) -> None:
        spec = replica.spec
        try:
            if not self._leading.is_set() and not await self._follow(replica):
                self._close_mirror(replica)
                return
            if replica.adopted and replica.state is ReplicaState.STARTING:
                # Its model was (or was to be) shipped by the backend that started it, which is gone: start afresh.
                self._kill(replica)
                replica.set_state(ReplicaState.STOPPED, "its starter left before it was ready; killed", force=True)
                self._close_mirror(replica)
                await self._release(spec.replica_id)
                return
            if replica.state is ReplicaState.STARTING and await self._until_ready(replica):
                await self._watch(replica)
            elif replica.state is ReplicaState.READY:  # adopted while serving
                await self._watch(replica)
            await self._finish(replica)
            await self._release(spec.replica_id)
        except asyncio.CancelledError:
            raise  # close() with keep_replicas_on_close: the actor keeps running
        except Exception:
            logger.exception("Supervising replica %s failed", spec.replica_id)
            replica.set_state(ReplicaState.CRASHED, "the engine lost track of the actor; killed", force=True)
            self._kill(replica)
            await self._release(spec.replica_id)
        finally:
            if replica.dead is not None and not replica.dead.done():
                replica.dead.cancel()
            if replica.client is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(replica.client.close())

    async def _until_ready(self, replica: _Replica) -> bool:
        """STARTING -> READY (True), or FAILED / stop requested (False)."""
        spec = replica.spec
        shipment: Shipment | None = None
        if not replica.adopted:
            try:
                shipment = await self._ship(spec.model_uri)
            except Exception as exc:
                logger.warning("Could not ship the model of replica %s: %s", spec.replica_id, exc)
                replica.set_state(ReplicaState.FAILED, f"could not ship the model's artifacts: {exc}")
                return False
        try:
            readiness = asyncio.ensure_future(_result(replica.handle.ready.remote(shipment)))
            assert replica.dead is not None
            deadline = asyncio.get_running_loop().time() + self.start_timeout
            while True:
                await _first(readiness, replica.dead, replica.stop_requested.wait(), timeout=self.health_interval)
                if readiness.done() or replica.dead.done() or replica.stop_requested.is_set():
                    break
                if asyncio.get_running_loop().time() > deadline:
                    readiness.cancel()
                    message = f"not ready {self.start_timeout:g} s after its start ({replica.message}); killed"
                    replica.set_state(ReplicaState.FAILED, message)
                    return False
                if await self._poll(replica) and replica.message.startswith("starting: waiting"):
                    replica.message = f"starting: loading the model on {replica.host or 'its node'}"
        finally:
            if shipment is not None:
                self._unship(spec.model_uri)
        if replica.stop_requested.is_set():
            readiness.cancel()
            return False
        if replica.dead.done():
            readiness.cancel()
            replica.set_state(ReplicaState.FAILED, f"the actor died before it was ready: {replica.dead.result()}")
            return False
        try:
            info = readiness.result()
        except self._ray.exceptions.RayError as exc:
            replica.set_state(ReplicaState.FAILED, f"the actor failed before it was ready: {_first_line(exc)}")
            return False
        replica.pid = info.get("pid")
        replica.host = str(info.get("host", ""))
        replica.node_id = str(info.get("node_id", ""))
        replica.learn_address(info)
        # The actor's own start (a new one may wait seconds for its node's worker process): the time
        # any engine that adopts or follows it reports too.
        replica.started_at = float(info.get("started_at") or replica.started_at)
        if info.get("state") != actor_module.READY:
            await self._poll(replica)  # the traceback, before anyone sees FAILED
            replica.set_state(ReplicaState.FAILED, str(info.get("message") or "the model could not be loaded"))
            return False
        await self._poll(replica)  # its log says it is ready by the time it shows READY
        if (unreachable := await self._reach(replica)) is not None:
            replica.set_state(ReplicaState.FAILED, f"loaded, but the backend cannot reach it: {unreachable}")
            return False
        replica.set_state(ReplicaState.READY, "ready")
        logger.info("Replica %s is READY (pid %s on %s)", spec.replica_id, replica.pid, replica.host)
        return True

    async def _watch(self, replica: _Replica) -> None:
        """Health-check a READY replica every `health_interval` until it dies, hangs or is asked to stop.

        Its connection dropping stops requests to it at once (see `_routable`) and brings the next
        check forward: a dead actor is CRASHED with Ray's reason; one that still answers Ray is
        connected again, and killed (CRASHED) if it cannot be.
        """
        assert replica.dead is not None
        if (unreachable := await self._reach(replica)) is not None:  # adopted: not connected yet
            logger.error("Replica %s cannot be reached: %s; killing it", replica.spec.replica_id, unreachable)
            self._kill(replica)
            replica.set_state(ReplicaState.CRASHED, f"the backend cannot reach it: {unreachable}; killed", force=True)
            return
        failed_pings = 0
        while True:
            waits = [replica.dead, replica.stop_requested.wait()]
            if replica.client is not None and replica.reachable:
                waits.append(replica.client.wait_closed())
            await _first(*waits, timeout=self.health_interval)
            if replica.stop_requested.is_set():
                return
            if replica.dead.done():
                message = f"the actor died while it was serving: {replica.dead.result()}"
                replica.set_state(ReplicaState.CRASHED, message, force=True)
                logger.error("Replica %s crashed: %s", replica.spec.replica_id, message)
                return
            if await self._poll(replica):
                failed_pings = 0
                if replica.reachable or replica.is_dead or replica.stop_requested.is_set():
                    continue
                if (unreachable := await self._reach(replica)) is None:
                    logger.warning("Replica %s: its connection dropped; connected again", replica.spec.replica_id)
                    continue
                logger.error("Replica %s answers Ray but cannot be reached: %s", replica.spec.replica_id, unreachable)
                self._kill(replica)
                replica.set_state(ReplicaState.CRASHED, f"its connection dropped: {unreachable}; killed")
                return
            failed_pings += 1
            if failed_pings >= MAX_FAILED_PINGS and not replica.is_dead:
                logger.error("Replica %s missed %d health checks; killing it", replica.spec.replica_id, failed_pings)
                self._kill(replica)
                replica.set_state(ReplicaState.CRASHED, f"did not answer {failed_pings} health checks; killed")
                return

    async def _follow(self, replica: _Replica) -> bool:
        """Follow a replica another instance leads: its state from health checks, no action on it.

        True once this instance leads (it then supervises the replica as its own); False once the
        actor is gone (STOPPED if the leader stopped it, else CRASHED or FAILED).
        """
        assert replica.dead is not None
        failed_pings = 0
        while True:
            await _first(replica.dead, self._leading.wait(), timeout=self.health_interval)
            if replica.dead.done():
                stopping = replica.state is ReplicaState.STOPPING or replica.reported == actor_module.STOPPED
                reason = "stopped by the leader" if stopping else f"the actor died: {replica.dead.result()}"
                replica.set_state(ReplicaState.STOPPED if stopping else ReplicaState.CRASHED, reason, force=True)
                return False
            if self._leading.is_set():
                if replica.state is ReplicaState.STOPPING:
                    replica.request_stop(self.stop_timeout)  # the old leader was stopping it: finish that
                return True
            if not await self._poll(replica):
                if replica.reported in (actor_module.STOPPING, actor_module.STOPPED):
                    replica.set_state(ReplicaState.STOPPED, "stopped by the leader", force=True)
                    return False
                failed_pings += 1
                if failed_pings >= MAX_FAILED_PINGS:  # hung: the leader kills it; here it is gone
                    replica.set_state(ReplicaState.CRASHED, "did not answer its health checks", force=True)
                    return False
                continue
            failed_pings = 0
            match replica.reported:
                case actor_module.READY:
                    # (Re)connect: a connection that dropped while the actor lives is the leader's to judge.
                    if await self._reach(replica) is None:
                        replica.set_state(ReplicaState.READY, "ready")
                case actor_module.STOPPING | actor_module.STOPPED:
                    replica.set_state(ReplicaState.STOPPING, "stopping (by the leader)")
                case actor_module.FAILED:
                    replica.set_state(ReplicaState.FAILED, replica.message)
                    return False

    async def _finish(self, replica: _Replica) -> None:
        """Drain on request, then kill the actor (a FAILED or CRASHED one at once).

        A replica that stopped or failed leaves nothing on its node; one whose actor died leaves its
        own log there (what it wrote last may not have been copied).
        """
        if replica.stop_requested.is_set() and not replica.is_dead and self.discover:
            # Other instances route here too: they see it STOPPING at their next health check, and stop
            # sending, while it still takes what they send meanwhile.
            with contextlib.suppress(TimeoutError, self._ray.exceptions.RayError):
                async with asyncio.timeout(self.ping_timeout):
                    await replica.handle.retire.remote()
            await asyncio.sleep(HANDOFF_CHECKS * self.health_interval)
        if replica.stop_requested.is_set() and not replica.is_dead:
            with contextlib.suppress(TimeoutError, self._ray.exceptions.RayError):
                async with asyncio.timeout(replica.stop_grace + STOP_MARGIN):
                    await replica.handle.stop.remote(replica.stop_grace)
            await self._poll(replica)  # its last lines ("Stopped")
        if not replica.is_dead and (replica.stop_requested.is_set() or replica.state is ReplicaState.FAILED):
            with contextlib.suppress(TimeoutError, self._ray.exceptions.RayError):
                async with asyncio.timeout(self.ping_timeout):
                    await replica.handle.discard.remote()
        self._kill(replica)
        if replica.stop_requested.is_set():
            replica.set_state(ReplicaState.STOPPED, "stopped", force=True)
        self._close_mirror(replica)

    def _close_mirror(self, replica: _Replica) -> None:
        if replica.mirror is not None:
            if replica.state is not ReplicaState.STOPPED:
                replica.mirror.note(f"{replica.state}: {replica.message}")
            replica.mirror.close()
            replica.mirror = None

    async def _poll(self, replica: _Replica) -> bool:
        """One health check: the actor's state and in-flight count, and its new log lines copied here."""
        mirror = replica.mirror
        copied = mirror.position if mirror is not None else 0
        try:
            async with asyncio.timeout(self.ping_timeout):
                status = await replica.handle.status.remote(copied)
        except (TimeoutError, self._ray.exceptions.RayError):
            return False
        if mirror is not None and mirror is replica.mirror:
            try:
                mirror.write(int(status.get("log_start", copied)), bytes(status.get("log", b"")))
            except (OSError, TypeError, ValueError) as exc:
                logger.warning("Could not copy the log of replica %s: %s", replica.spec.replica_id, exc)
        replica.reported = str(status.get("state", ""))
        if replica.reported == actor_module.FAILED:
            replica.message = str(status.get("message") or replica.message)
        pid = status.get("pid")
        if isinstance(pid, int):
            replica.pid = pid
        if status.get("host"):
            replica.host = str(status["host"])
        return True

    def _kill(self, replica: _Replica) -> None:
        self._kill_handle(replica.handle)

    async def _reach(self, replica: _Replica) -> str | None:
        """Connect to the replica's port (asked of the actor if not known yet); None, or why it cannot."""
        if replica.reachable:
            return None
        if replica.address is None:
            try:
                async with asyncio.timeout(self.ping_timeout):
                    replica.learn_address(await replica.handle.describe.remote())
            except (TimeoutError, self._ray.exceptions.RayError) as exc:
                return f"it did not say where it serves: {_first_line(exc)}"
            if replica.address is None:
                return "it serves on no port"
        client = WorkerClient(replica.address, replica.secret)
        try:
            await client.connect(self.ping_timeout)
        except ConnectionError as exc:
            return str(exc)
        previous, replica.client = replica.client, client
        if previous is not None:
            await previous.close()
        return None

    def _kill_handle(self, handle: Any) -> None:
        if self._ray is None:
            return
        with contextlib.suppress(Exception):  # already gone
            self._ray.kill(handle, no_restart=True)

    # -- artifacts ---------------------------------------------------------------------------------
    async def _ship(self, model_uri: str) -> Shipment:
        """The shipment of `model_uri` (packed once while replicas of it are loading)."""
        entry = self._shipments.get(model_uri)
        if entry is None:
            packing = asyncio.ensure_future(asyncio.to_thread(pack, model_uri, self._ray.put))
            entry = (packing, 0)
        self._shipments[model_uri] = (entry[0], entry[1] + 1)
        try:
            return await asyncio.shield(entry[0])
        except BaseException:
            self._unship(model_uri)
            raise

    def _unship(self, model_uri: str) -> None:
        entry = self._shipments.get(model_uri)
        if entry is None:
            return
        if entry[1] <= 1:
            del self._shipments[model_uri]  # the objects go once the actors that fetched them let go
        else:
            self._shipments[model_uri] = (entry[0], entry[1] - 1)

    # -- adoption ----------------------------------------------------------------------------------
    async def _discover(self) -> None:
        """Adopt the actors other instances start, as they appear (see `_adopt`); leading, sweep stale claims."""
        swept_at = time.monotonic()
        while True:
            await asyncio.sleep(self.health_interval)
            try:
                await self._adopt(patience=self.health_interval)
            except Exception as exc:  # noqa: BLE001 - the cluster out of reach for a moment: try again
                logger.warning("Could not look for new replica actors: %s", _first_line(exc))
                continue
            if time.monotonic() - swept_at >= SWEEP_SECONDS:
                swept_at = time.monotonic()
                try:
                    await self._sweep()
                except Exception as exc:  # noqa: BLE001 - the database out of reach: the next sweep
                    logger.warning("Could not sweep stale slot claims: %s", _first_line(exc))

    async def _adopt(self, patience: float | None = None) -> None:
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
            spec = self._adoptable(name, info)
            if spec is not None and spec.replica_id in self._replicas:
                continue
            if spec is None:
                self._strangers.add(name)
                continue
            state = info.get("state")
            if state not in _STATES or (state == actor_module.CREATED and leading):
                if leading:
                    logger.info("Replica actor %s is %s; killing it (the controller starts what it needs)", name, state)
                    with contextlib.suppress(Exception):
                        ray.kill(handle, no_restart=True)
                    await self._release(spec.replica_id)  # its slot, for the start that replaces it
                continue
            replica = _Replica(
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
            replica.mirror = self._open_mirror(
                spec.replica_id, spec.log_path, int(info.get("copied") or 0) if leading else 0
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
            logger.warning("Replica actor %s did not describe itself: %s", name, _first_line(exc))
            return None, None
        return handle, info if isinstance(info, dict) else None

    def _adoptable(self, name: str, info: dict[str, Any]) -> ReplicaSpec | None:
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
            log_path = str(paths.log_dir(self.data_dir, model_name, version) / f"{paths.segment(replica_id)}.log")
        except Exception:  # noqa: BLE001 - whatever it says, it is not adoptable
            return None
        spec = ReplicaSpec(
            replica_id, model_name, version, "", log_path, max_batch_size=batch_size, max_batch_wait_ms=batch_wait
        )
        if not hmac.compare_digest(self._seal(spec), str(info.get("seal", ""))):
            logger.info("Replica actor %s was not started by this deployment (its seal differs); left alone", name)
            return None
        return spec

    def _seal(self, spec: ReplicaSpec) -> str:
        identity = [spec.replica_id, spec.model_name, spec.version, spec.max_batch_size, spec.max_batch_wait_ms]
        return hmac.new(self._key, json.dumps(identity).encode(), hashlib.sha256).hexdigest()

    def _open_mirror(self, replica_id: str, log_path: str, position: int) -> LogMirror | None:
        try:
            return LogMirror(log_path, self.log_max_bytes, position)
        except OSError as exc:
            logger.warning("Cannot write the log of replica %s to %s: %s", replica_id, log_path, exc)
            return None


# -- Ray, once per process -------------------------------------------------------------------------
# Engines of one process share its Ray connection; the last one to close ends it, if an engine opened it.
_connections = 0
_opened_here = False


def _connect(address: str, namespace: str, options: Mapping[str, Any]) -> Any:
    """`ray.init` unless this process is connected already (then that connection is used, and left open)."""
    global _connections, _opened_here
    try:
        import ray
    except ImportError as exc:
        raise RuntimeError("the Ray engine needs the 'ray' extra: pip install 'rtserve[ray]'") from exc
    if not ray.is_initialized():
        ray.init(address=address, namespace=namespace, log_to_driver=False, **options)
        _opened_here = True
    _connections += 1
    return ray


def _disconnect() -> None:
    global _connections, _opened_here
    import ray

    _connections = max(0, _connections - 1)
    if _connections == 0 and _opened_here:
        _opened_here = False
        ray.shutdown()


def _seal_key(data_dir: Path) -> bytes:
    """This deployment's key for actor seals, created (0600) at the first start."""
    path = data_dir / SEAL_KEY_FILE
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    key = secrets.token_hex(32).encode()
    with os.fdopen(fd, "wb") as handle:
        handle.write(key + b"\n")
    return key


def _described(name: str, describing: asyncio.Task[tuple[Any, dict[str, Any] | None]]) -> tuple[Any, Any]:
    """A finished describe call's (handle, info); (None, None) if it failed (asked again next round)."""
    if describing.cancelled():
        return None, None
    if (exc := describing.exception()) is not None:
        logger.warning("Could not describe replica actor %s: %s", name, _first_line(exc))
        return None, None
    return describing.result()


async def _result(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


async def _first(*waits: Awaitable[object], timeout: float | None = None) -> None:
    """Return when the first of the awaitables finishes (or after `timeout`); futures passed in are not cancelled."""
    tasks = [asyncio.ensure_future(wait) for wait in waits]
    try:
        await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task, wait in zip(tasks, waits, strict=True):
            if task is not wait:
                task.cancel()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _death_reason(exc: BaseException) -> str:
    """A short reason from Ray's long ActorDiedError text."""
    text = " ".join(str(exc).split())
    node = re.search(r"its node has died\. Node Id: (\w+)", text)
    if node:
        return f"its node {node.group(1)[:12]} was lost"
    worker = re.search(r"Worker exit type: (\w+) Worker exit detail: ([^.]*)", text)
    if worker:
        return f"its process exited ({worker.group(1)}: {worker.group(2).strip()})"
    killed = re.search(r"[^.]*ray\.kill[^.]*", text)
    if killed:
        return killed.group(0).strip()
    node = re.search(r"[^.]*node[^.]*(died|dead)[^.]*", text, re.IGNORECASE)
    if node:
        return node.group(0).strip()
    return _first_line(exc)[:300]
