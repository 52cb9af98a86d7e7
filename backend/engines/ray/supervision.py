"""How the Ray engine follows one replica actor, from its start (or adoption) to its end.

One monitor task per replica (`Supervisor.supervise`) owns its life: it ships the model's artifacts
(`artifacts`), awaits the actor's `ready` (READY, or FAILED with the loader's error), connects to the
port it serves on (`WorkerClient`), polls `status` as the health check (which also copies the actor's
log to the backend: `logs`), and learns of the actor's death at once, through a call that only
returns when the actor stops (`Supervisor.death_of`) and through its connection dropping: CRASHED.
A stop drains the replica, then kills its actor.

An engine that does not lead follows its replicas instead (state from health checks, no action on
them) until it leads or the actor is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from rtserve.server.engines.base import ReplicaState
from rtserve.server.engines.local.client import WorkerClient
from rtserve.server.engines.ray import actor as actor_module
from rtserve.server.engines.ray.artifacts import Shipment, Shipments
from rtserve.server.engines.ray.connection import first_line, kill
from rtserve.server.engines.ray.logs import LogMirror
from rtserve.server.engines.replicas import ReplicaRecord

logger = logging.getLogger(__name__)

MAX_FAILED_PINGS = 3
# With other instances routing to the replicas: health checks they get to see a replica STOPPING before it stops.
HANDOFF_CHECKS = 2
# Beyond a stop's grace: the time a stop call may take to come back before the actor is killed anyway.
STOP_MARGIN = 5.0


@dataclass(eq=False, kw_only=True)
class Replica(ReplicaRecord):
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


class Supervisor:
    """Runs the monitor of each replica actor of one engine.

    - `ray`: the Ray module, connected; `leading`: set while the engine leads (else it follows).
    - `shipments`: the engine's model artifacts in the object store; `release(replica_id)`: frees the
      replica's slot once the leader stopped it or found it dead.
    - `health_interval`, `ping_timeout`, `start_timeout`, `stop_timeout`: as for `RayEngine`.
    - `shared`: other instances route to the replicas too (the engine's `discover`): a stop first lets
      them see the replica STOPPING.
    """

    def __init__(
        self,
        ray: Any,
        *,
        leading: asyncio.Event,
        shipments: Shipments,
        release: Callable[[str], Awaitable[None]],
        health_interval: float,
        ping_timeout: float,
        start_timeout: float,
        stop_timeout: float,
        shared: bool,
    ) -> None:
        self._ray = ray
        self._leading = leading
        self._shipments = shipments
        self._release = release
        self.health_interval = health_interval
        self.ping_timeout = ping_timeout
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.shared = shared

    async def death_of(self, replica: Replica) -> str:
        """Resolves with the reason as soon as the actor is dead (a call that only returns when it stops)."""
        while True:
            try:
                await replica.handle.wait_closed.remote()
            except self._ray.exceptions.ActorDiedError as exc:
                return death_reason(exc)
            except self._ray.exceptions.ActorUnavailableError:
                await asyncio.sleep(self.health_interval)  # unreachable for now (a network hiccup): ask again
                continue
            except self._ray.exceptions.RayError as exc:
                return first_line(exc)
            # Stopped on request; the actor is killed next. Wait for that to be seen, without a call.
            replica.reported = actor_module.STOPPED
            await asyncio.Future()

    async def supervise(self, replica: Replica) -> None:
        """The replica's whole life: followed while another instance leads, STARTING -> READY or FAILED,
        health checks, then its end (the actor killed, its slot released)."""
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

    async def _until_ready(self, replica: Replica) -> bool:
        """STARTING -> READY (True), or FAILED / stop requested (False)."""
        spec = replica.spec
        shipment: Shipment | None = None
        if not replica.adopted:
            try:
                shipment = await self._shipments.ship(spec.model_uri, self._ray.put)
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
                self._shipments.unship(spec.model_uri)
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
            replica.set_state(ReplicaState.FAILED, f"the actor failed before it was ready: {first_line(exc)}")
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
        if (unreachable := await self.reach(replica)) is not None:
            replica.set_state(ReplicaState.FAILED, f"loaded, but the backend cannot reach it: {unreachable}")
            return False
        replica.set_state(ReplicaState.READY, "ready")
        logger.info("Replica %s is READY (pid %s on %s)", spec.replica_id, replica.pid, replica.host)
        return True

    async def _watch(self, replica: Replica) -> None:
        """Health-check a READY replica every `health_interval` until it dies, hangs or is asked to stop.

        Its connection dropping stops requests to it at once (see `RayEngine._routable`) and brings the next
        check forward: a dead actor is CRASHED with Ray's reason; one that still answers Ray is
        connected again, and killed (CRASHED) if it cannot be.
        """
        assert replica.dead is not None
        if (unreachable := await self.reach(replica)) is not None:  # adopted: not connected yet
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
                if (unreachable := await self.reach(replica)) is None:
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

    async def _follow(self, replica: Replica) -> bool:
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
                    if await self.reach(replica) is None:
                        replica.set_state(ReplicaState.READY, "ready")
                case actor_module.STOPPING | actor_module.STOPPED:
                    replica.set_state(ReplicaState.STOPPING, "stopping (by the leader)")
                case actor_module.FAILED:
                    replica.set_state(ReplicaState.FAILED, replica.message)
                    return False

    async def _finish(self, replica: Replica) -> None:
        """Drain on request, then kill the actor (a FAILED or CRASHED one at once).

        A replica that stopped or failed leaves nothing on its node; one whose actor died leaves its
        own log there (what it wrote last may not have been copied). A new actor that never answered (one
        Ray has not placed, waiting for a node with its labels or resources, or whose process is still
        starting) holds no request and no file: it is killed at once, not asked to drain for `stop_grace`.
        """
        answers = not replica.is_dead and bool(replica.reported or replica.node_id)
        if replica.stop_requested.is_set() and answers and self.shared:
            # Other instances route here too: they see it STOPPING at their next health check, and stop
            # sending, while it still takes what they send meanwhile.
            with contextlib.suppress(TimeoutError, self._ray.exceptions.RayError):
                async with asyncio.timeout(self.ping_timeout):
                    await replica.handle.retire.remote()
            await asyncio.sleep(HANDOFF_CHECKS * self.health_interval)
        if replica.stop_requested.is_set() and answers:
            with contextlib.suppress(TimeoutError, self._ray.exceptions.RayError):
                async with asyncio.timeout(replica.stop_grace + STOP_MARGIN):
                    await replica.handle.stop.remote(replica.stop_grace)
            await self._poll(replica)  # its last lines ("Stopped")
        if answers and (replica.stop_requested.is_set() or replica.state is ReplicaState.FAILED):
            with contextlib.suppress(TimeoutError, self._ray.exceptions.RayError):
                async with asyncio.timeout(self.ping_timeout):
                    await replica.handle.discard.remote()
        self._kill(replica)
        if replica.stop_requested.is_set():
            replica.set_state(ReplicaState.STOPPED, "stopped", force=True)
        self._close_mirror(replica)

    def _close_mirror(self, replica: Replica) -> None:
        if replica.mirror is not None:
            if replica.state is not ReplicaState.STOPPED:
                replica.mirror.note(f"{replica.state}: {replica.message}")
            replica.mirror.close()
            replica.mirror = None

    async def _poll(self, replica: Replica) -> bool:
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
        cpu, memory = status.get("cpu_percent"), status.get("memory_percent")
        if isinstance(cpu, int | float) and isinstance(memory, int | float):
            replica.usage = (float(cpu), float(memory))
        return True

    def _kill(self, replica: Replica) -> None:
        kill(self._ray, replica.handle)

    async def reach(self, replica: Replica) -> str | None:
        """Connect to the replica's port (asked of the actor if not known yet); None, or why it cannot."""
        if replica.reachable:
            return None
        if replica.address is None:
            try:
                async with asyncio.timeout(self.ping_timeout):
                    replica.learn_address(await replica.handle.describe.remote())
            except (TimeoutError, self._ray.exceptions.RayError) as exc:
                return f"it did not say where it serves: {first_line(exc)}"
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


def death_reason(exc: BaseException) -> str:
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
    return first_line(exc)[:300]
