"""`LocalEngine`: the engine interface (`backend.engines.base.Engine`) over replica processes on this machine.

It starts and stops replicas, routes each request to the READY replica of its version with the
fewest requests in flight (over its client's persistent connection), and reports what it sees. The
process side lives in `supervision` (one monitor task per replica) and `forkserver`; the protocol
client in `client`; the logs in `logs`.
"""

from __future__ import annotations

import asyncio
import atexit
import itertools
import multiprocessing
import os
import shutil
import signal
import tempfile
import time
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from multiprocessing.context import ForkServerContext
from multiprocessing.process import BaseProcess
from typing import Any

from rtserve.server.engines.base import (
    InvocationResult,
    ReplicaSpec,
    ReplicaState,
)
from rtserve.server.engines.local.environment_forkserver import EnvironmentProcess
from rtserve.server.engines.local.forkserver import FORKSERVER_PRELOAD, ForkServer
from rtserve.server.engines.local.logs import LogBook
from rtserve.server.engines.local.supervision import Replica, Supervisor, kill, signal_replica
from rtserve.server.engines.replicas import ReplicaTable
from rtserve.server.replica_logs import DEFAULT_MAX_BYTES
from rtserve.server.worker.limits import DEFAULT_MAX_INPUT_COLUMNS
from rtserve.server.worker.replica import DEFAULT_DRAIN_TIMEOUT

# sun_path holds 108 bytes on Linux; stay well below it.
MAX_SOCKET_PATH = 100


class LocalEngine(ReplicaTable[Replica]):
    """Runs replicas as local processes; implements `backend.engines.base.Engine`.

    `run_dir` holds the replicas' sockets. `health_interval` is the time between health pings of a
    READY replica; one that misses `MAX_FAILED_PINGS` pings in a row (each waiting `ping_timeout`)
    is killed and reported CRASHED. `close_timeout` bounds the stop of every replica in `close()`.

    The replicas' settings (the app passes its `Settings`' values; the engine reads no environment):
    - `stop_timeout`: how long a graceful stop drains; the replica stops waiting for its requests
      then, and is killed if it did not exit (10 s).
    - `log_max_bytes`: where a replica log rotates (5 MiB).
    - `max_input_columns`: the most input columns a request may have, unless the model's signature
      names more (1024).
    """

    def __init__(
        self,
        run_dir: str,
        health_interval: float = 0.5,
        *,
        ping_timeout: float = 2.0,
        stop_timeout: float = DEFAULT_DRAIN_TIMEOUT,
        close_timeout: float = 3.0,
        wall_clock: Callable[[], float] = time.time,
        log_max_bytes: int = DEFAULT_MAX_BYTES,
        max_input_columns: int = DEFAULT_MAX_INPUT_COLUMNS,
    ) -> None:
        self.run_dir = run_dir
        self.log_max_bytes = log_max_bytes
        self.health_interval = health_interval
        self.ping_timeout = ping_timeout
        self.stop_timeout = stop_timeout
        self.max_input_columns = max_input_columns
        self.close_timeout = close_timeout
        self._wall_clock = wall_clock
        self._context: ForkServerContext | None = None
        self._forkserver = ForkServer()
        # One per model environment a replica ran in (backend/environments), started on first use.
        self._environment_forkservers: dict[str, ForkServer] = {}
        # Process.start() talks to the fork server synchronously; it runs here, one at a time.
        self._spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="replica-spawner")
        self._supervisor = Supervisor(
            forkserver=self._forkserver,
            spawner=self._spawner,
            health_interval=health_interval,
            ping_timeout=ping_timeout,
            log_max_bytes=self.log_max_bytes,
        )
        self._replicas: dict[str, Replica] = {}
        # Includes forgotten replicas whose process is still being reaped, so close() waits for them.
        self._monitors: set[asyncio.Task[None]] = set()
        self._logs = LogBook()
        self._socket_names = itertools.count(1)
        self._socket_dir: str | None = None
        self._own_socket_dir = False

    async def start(self) -> None:
        """Start the pre-loaded fork server (its imports finish in the background)."""
        if self._context is not None:
            return
        os.makedirs(self.run_dir, exist_ok=True)
        self._socket_dir = self._choose_socket_dir()
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(FORKSERVER_PRELOAD)
        await self._forkserver.ensure()
        self._context = context

    async def close(self) -> None:
        """Stop every replica (SIGTERM, SIGKILL after `close_timeout`) and release resources."""
        self._forkserver.close()
        for forkserver in self._environment_forkservers.values():
            forkserver.close()
        for replica in list(self._replicas.values()):
            replica.request_stop(self.close_timeout)
        if self._monitors:
            # The monitors SIGKILL whatever outlives close_timeout; the margin covers reaping.
            _, stuck = await asyncio.wait(self._monitors, timeout=self.close_timeout + 5.0)
            for monitor in stuck:
                monitor.cancel()
        for replica in self._replicas.values():
            kill(replica)
        self._replicas.clear()
        _live_engines.discard(self)
        self._spawner.shutdown(wait=False)
        if self._own_socket_dir and self._socket_dir:
            shutil.rmtree(self._socket_dir, ignore_errors=True)

    async def start_replica(self, spec: ReplicaSpec) -> None:
        """Register the replica as STARTING and return; a monitor task spawns it, then READY or FAILED."""
        if spec.replica_id in self._replicas:
            raise ValueError(f"replica {spec.replica_id!r} already exists")
        if self._context is None:
            await self.start()
        assert self._context is not None and self._socket_dir is not None
        # The pid keeps engines of several backend processes sharing a run_dir apart.
        socket_path = os.path.join(self._socket_dir, f"{os.getpid()}-{next(self._socket_names)}.sock")
        parent_conn, child_conn = self._context.Pipe(duplex=True)
        log_read_fd, log_write_fd = os.pipe()
        log_conn = Connection(log_write_fd, readable=False)
        from rtserve.server.worker.replica import run_replica

        process_options: dict[str, Any] = dict(
            target=run_replica,
            args=(spec, socket_path, child_conn, log_conn, self.stop_timeout),
            kwargs={"max_input_columns": self.max_input_columns, "log_max_bytes": self.log_max_bytes},
            name=f"replica-{spec.replica_id}",
            daemon=False,  # a daemonic process may not start processes, and models' libraries do
        )
        forkserver = None
        process: BaseProcess
        if spec.python is None:
            # A variable read at import time would come too late in a child of the pre-loaded fork server.
            context = multiprocessing.get_context("spawn") if spec.fresh_interpreter else self._context
            process = context.Process(**process_options)
        else:  # a model environment of its own: forked from that environment's fork server
            forkserver = self._environment_forkserver(spec.python)
            process = EnvironmentProcess(spec.python, **process_options)
        self._logs.remember(spec.replica_id, spec.log_path)
        replica = Replica(
            spec=spec,
            process=process,
            status_conn=parent_conn,
            log_conn=log_conn,
            log_read_fd=log_read_fd,
            socket_path=socket_path,
            started_at=self._wall_clock(),
            pid=None,
            stop_grace=self.stop_timeout,
            forkserver=forkserver,
        )
        self._replicas[spec.replica_id] = replica
        replica.monitor = asyncio.create_task(
            self._supervisor.supervise(replica, child_conn), name=f"replica-monitor:{spec.replica_id}"
        )
        self._monitors.add(replica.monitor)
        replica.monitor.add_done_callback(self._monitors.discard)
        _live_engines.add(self)

    def _environment_forkserver(self, python: str) -> ForkServer:
        forkserver = self._environment_forkservers.get(python)
        if forkserver is None:
            forkserver = self._environment_forkservers[python] = ForkServer(python)
        return forkserver

    def read_logs(self, replica_id: str, max_bytes: int = 1_000_000) -> str:
        """The last `max_bytes` of the replica's log (its rotated part too), starting at a line boundary."""
        return self._logs.read(replica_id, max_bytes)

    async def invoke(
        self, model_name: str, version: str, body: bytes, content_type: str, timeout: float
    ) -> InvocationResult:
        """Score on the READY replica of the version with the fewest requests in flight."""
        replica = self._pick(model_name, version)
        assert replica.client is not None
        replica.in_flight += 1
        replica.dispatched += 1
        try:
            return await replica.client.invoke(body, content_type, timeout)
        except ConnectionError:  # ReplicaUnreachable (not sent) or ReplicaLost (sent), for the caller
            # Stop routing to it now; the monitor records why the process died.
            replica.set_state(ReplicaState.CRASHED, "lost its connection during a request")
            raise
        finally:
            replica.in_flight -= 1

    def _choose_socket_dir(self) -> str:
        socket_dir = os.path.join(os.path.abspath(self.run_dir), "s")
        if len(os.path.join(socket_dir, "4194304-99999.sock")) <= MAX_SOCKET_PATH:
            os.makedirs(socket_dir, exist_ok=True)
            return socket_dir
        # A deep run_dir would overflow sun_path; sockets then live in a short private temp dir.
        self._own_socket_dir = True
        return tempfile.mkdtemp(prefix="rtserve-")


# Engines with live replicas. At interpreter exit multiprocessing joins every non-daemonic child,
# and a replica only stops when asked; this hook, registered after multiprocessing's, runs first.
_live_engines: weakref.WeakSet[LocalEngine] = weakref.WeakSet()


@atexit.register
def _terminate_replicas_at_exit() -> None:
    for engine in list(_live_engines):
        for replica in list(engine._replicas.values()):
            signal_replica(replica, signal.SIGTERM)
