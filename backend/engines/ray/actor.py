"""`ReplicaActor`: one replica as a detached, named Ray actor, running the worker's own scoring code.

Ray is the control plane (placement, lifecycle, health, logs); requests do not go through it. Once
the model is loaded, the actor serves the local replica's framed protocol (`backend.worker.server`)
on a TCP port of its node, at the node's IP as Ray reports it, and the engine sends requests there
over one persistent connection, as to a local replica: MLflow's pyfunc, the exact-frame fast path,
adaptive batching, in the same code. The cluster's network is not trusted: a connection must first
present the replica's secret, a random token the actor makes and tells only through Ray (`describe`,
over Ray's own channel; an engine that adopts the actor later learns it the same way). It is an async
actor (its methods are coroutines on the event loop that also serves the port), and predictions run on
the server's scoring thread, so `status` is answered while a long prediction runs.

Its life: created (fast: the log starts, nothing is loaded) -> `ready(shipment)` fetches the
artifacts to its node, loads the model on a thread and starts scoring -> `stop(grace)` drains ->
the engine kills it. `ready` answers "failed" with the loader's error instead of raising, and may
be awaited again by an engine that adopts the actor later. The engine learns of a death at once
through `wait_closed`, a call that only returns when the actor stops.

A warm-pool actor (`spec` None) is made ahead of need: IDLE, it has imported what the local engine's
fork server imports (`backend.worker.preload`: MLflow, pandas, scikit-learn, the worker) and waits;
`take(spec, seal)` makes it that replica (CREATED), and `ready` follows as above, without the
imports a new Ray worker process would pay for.

Everything an engine needs to adopt a running actor is in `describe()`. This module imports Ray
only inside the actor's methods: the engine imports it to create the actor (`ray.remote`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shutil
import socket
import sys
import tempfile
import time
import traceback
from typing import Any

import psutil

from rtserve.server.engines.ray.artifacts import Shipment, unpack
from rtserve.server.engines.ray.logs import COPY_BYTES, capture_output
from rtserve.server.worker.replica import _loader_message
from rtserve.server.worker.types import ReplicaSpec

logger = logging.getLogger("rtserve.replica")

# What `describe()` says it is: an engine adopts only actors that answer with this kind.
KIND = "rtserve.replica/1"

# The actor's own states (the engine maps them to `ReplicaState`).
IDLE = "idle"  # a warm-pool actor: imports done, no replica yet (`take` makes it one)
CREATED = "created"  # no artifacts were given yet
LOADING = "loading"
READY = "ready"
FAILED = "failed"
STOPPING = "stopping"
STOPPED = "stopped"


class ReplicaActor:
    """One replica of `spec`; the engine wraps this class with `ray.remote` and starts it detached and named."""

    def __init__(
        self,
        spec: ReplicaSpec | None,
        *,
        seal: str,
        drain_timeout: float,
        max_input_columns: int,
        log_max_bytes: int,
        work_root: str | None = None,
        replica_ports: tuple[int, int] | None = None,
    ) -> None:
        self.spec: ReplicaSpec = spec or ReplicaSpec("", "", "", "", "")
        # The engine's proof that it started this actor as `spec`, or (IDLE) as this pool actor (see its adoption).
        self.seal = seal
        self.drain_timeout = drain_timeout
        self.max_input_columns = max_input_columns
        self.replica_ports = replica_ports
        # Where the replica serves requests once READY, and what a connection must present there.
        self.address: tuple[str, int] | None = None
        self.secret = secrets.token_urlsafe(32)
        self.started_at = time.time()
        self.state = CREATED if spec is not None else IDLE
        self.message = "created" if spec is not None else "warm: waiting for a model"
        self.copied = 0  # how much of the log the engine said it has copied (`status`), for an adopting engine
        # Everything of this replica on its node: the model's files and the actor's own log.
        prefix = f"rtserve-{spec.replica_id}-" if spec is not None else "rtserve-warm-"
        self.work_dir = tempfile.mkdtemp(prefix=prefix, dir=work_root)
        self.log_path = os.path.join(self.work_dir, "replica.log")
        self._capture, self._log = capture_output(self.log_path, log_max_bytes)
        logging.basicConfig(
            level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr, force=True
        )
        self._load: asyncio.Task[None] | None = None
        self._server: Any = None  # a ReplicaServer once loaded
        self._closed: asyncio.Event | None = None
        self._stopping: asyncio.Task[bool] | None = None
        # This process, as the CPU and memory metrics see it (psutil measures CPU between two calls on one object).
        self._process = psutil.Process()
        self._process.cpu_percent(None)
        self._node_memory = psutil.virtual_memory().total
        if spec is None:
            self._warm_up()
        else:
            self._created()

    def _created(self) -> None:
        spec = self.spec
        os.environ.update(spec.env)
        logger.info(
            "Replica %s (pid %d on %s): created for %s version %s",
            spec.replica_id,
            os.getpid(),
            socket.gethostname(),
            spec.model_name,
            spec.version,
        )

    def _warm_up(self) -> None:
        started = time.monotonic()
        # What the local engine's fork server imports, and the caches it fills (at import of `preload`).
        from rtserve.server.worker import preload

        logger.info(
            "Warm actor (pid %d on %s): imported %s in %.1f s; waiting for a model",
            os.getpid(),
            socket.gethostname(),
            ", ".join(preload.MODULES),
            time.monotonic() - started,
        )

    # -- what the engine calls -------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """Who and where this replica is, and its state: enough for an engine to adopt it."""
        import ray

        spec = self.spec
        return {
            "kind": KIND,
            "replica_id": spec.replica_id,
            "model_name": spec.model_name,
            "version": spec.version,
            "max_batch_size": spec.max_batch_size,
            "max_batch_wait_ms": spec.max_batch_wait_ms,
            "state": self.state,
            "message": self.message,
            "started_at": self.started_at,
            "pid": os.getpid(),
            "node_id": ray.get_runtime_context().get_node_id(),
            "host": socket.gethostname(),
            "work_dir": self.work_dir,
            "in_flight": self._in_flight(),
            "copied": self.copied,
            "seal": self.seal,
            "address": list(self.address) if self.address is not None else None,
            "secret": self.secret,
        }

    async def take(self, spec: ReplicaSpec, seal: str) -> bool:
        """Become replica `spec` (sealed by the engine); False if this actor is no longer IDLE (taken already)."""
        if self.state != IDLE:
            return False
        self.spec, self.seal = spec, seal
        self.state, self.message = CREATED, "created"
        self.started_at = time.time()
        self._created()
        return True

    async def ready(self, shipment: Shipment | None = None) -> dict[str, Any]:
        """Load the model from `shipment` (once), and answer `describe()` when READY or FAILED.

        Called again (by an engine that adopted the actor while it loads), it waits for the same load.
        """
        if self._load is None and self.state == CREATED:
            if shipment is None:
                self._fail("no artifacts were given to load")
            else:
                self.state, self.message = LOADING, "loading"
                self._load = asyncio.create_task(self._load_model(shipment))
        if self._load is not None:
            await asyncio.shield(self._load)
        return self.describe()

    async def status(self, copied: int, max_bytes: int = COPY_BYTES) -> dict[str, Any]:
        """The health check: state, requests in flight, and the log after position `copied` (what the engine has)."""
        self.copied = max(self.copied, copied)
        start, data = self._log.since(copied, max_bytes)
        return {
            "state": self.state,
            "message": self.message,
            "in_flight": self._in_flight(),
            "pid": os.getpid(),
            "host": socket.gethostname(),
            **self._usage(),
            "log_start": start,
            "log": data,
        }

    def _usage(self) -> dict[str, float]:
        """CPU since the previous health check (percent of one core) and resident memory (percent of the node's)."""
        try:
            with self._process.oneshot():
                cpu, rss = self._process.cpu_percent(None), self._process.memory_info().rss
        except psutil.Error:
            return {}
        return {"cpu_percent": cpu, "memory_percent": 100.0 * rss / self._node_memory}

    async def retire(self) -> None:
        """Report STOPPING while still answering requests: the other backend instances that route here
        stop sending before `stop` (which follows) refuses new requests."""
        if self.state == READY:
            self.state, self.message = STOPPING, "stopping"

    async def stop(self, grace: float) -> bool:
        """Stop taking connections, answer the requests received for up to `grace` seconds; False if some were
        abandoned.

        The files of the model are removed. The engine copies the last lines of the log, has the
        rest removed (`discard`) and kills the actor.
        """
        if self._stopping is None:
            self._stopping = asyncio.create_task(self._stop(grace))
        return await asyncio.shield(self._stopping)

    async def discard(self) -> None:
        """Remove everything of this replica from its node (the engine has copied its log); killed next."""
        if self.state in (LOADING, READY):
            return  # only a replica that stopped or failed
        shutil.rmtree(self.work_dir, ignore_errors=True)

    async def wait_closed(self) -> None:
        """Return once the replica stopped; raises (for the caller) at once if the actor dies first."""
        await self._closed_event().wait()

    # -- inside ----------------------------------------------------------------------------------
    async def _load_model(self, shipment: Shipment) -> None:
        import ray

        from rtserve.server.worker.server import ReplicaServer, load_model

        spec = self.spec
        model_dir = os.path.join(self.work_dir, "model")
        try:
            logger.info("Replica %s: fetching %d bytes of artifacts", spec.replica_id, shipment.total_bytes)
            await unpack(shipment, model_dir, _fetch)
            logger.info("Replica %s: loading %s version %s", spec.replica_id, spec.model_name, spec.version)
            model = await asyncio.to_thread(load_model, model_dir)
            server = ReplicaServer(
                model,
                max_batch_size=spec.max_batch_size,
                max_batch_wait_ms=spec.max_batch_wait_ms,
                drain_timeout=self.drain_timeout,
                max_input_columns=self.max_input_columns,
            )
            host = ray.util.get_node_ip_address()
            try:
                port = await server.listen(host, self.secret, self.replica_ports)
            except OSError as exc:
                ports = "-".join(map(str, self.replica_ports)) if self.replica_ports else "any port"
                raise OSError(f"cannot listen for requests on {host} ({ports}): {exc}") from exc
        except BaseException as exc:  # noqa: BLE001 - whatever the loader raised is the replica's failure
            traceback.print_exc()
            if self.state == LOADING:
                self._fail(_loader_message(exc))
            if not isinstance(exc, Exception):
                raise
            return
        if self.state != LOADING:  # stopped while loading
            server.request_stop(0)
            await server.serve_until_stopped()
            return
        self._server = server
        self.address = (host, port)
        self.state, self.message = READY, "ready"
        batching = f"batches of up to {server.max_batch_size}" if server.batching else "no batching"
        logger.info("Replica %s: ready (%s), serving on %s:%d", spec.replica_id, batching, host, port)

    def _fail(self, message: str) -> None:
        self.state, self.message = FAILED, message
        logger.error("Replica %s: the model could not be loaded: %s", self.spec.replica_id, message)
        shutil.rmtree(os.path.join(self.work_dir, "model"), ignore_errors=True)

    async def _stop(self, grace: float) -> bool:
        was = self.state
        self.state, self.message = STOPPING, "stopping"
        drained = True
        if self._server is not None:
            logger.info("Replica %s: stopping, %d request(s) in flight", self.spec.replica_id, self._in_flight())
            self._server.request_stop(grace)
            drained = await self._server.serve_until_stopped()
        elif was == LOADING:
            logger.info("Replica %s: stopping while loading", self.spec.replica_id)
        shutil.rmtree(os.path.join(self.work_dir, "model"), ignore_errors=True)
        self.state, self.message = STOPPED, "stopped" if drained else "stopped; requests still running were abandoned"
        logger.info("Replica %s: %s", self.spec.replica_id, self.message)
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        self._closed_event().set()
        return drained

    def _closed_event(self) -> asyncio.Event:
        if self._closed is None:  # made in the event loop, where it is awaited
            self._closed = asyncio.Event()
        return self._closed

    def _in_flight(self) -> int:
        return self._server.in_flight if self._server is not None else 0


async def _fetch(ref: Any) -> bytes:
    return await ref
