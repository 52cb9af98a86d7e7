"""The local engine: each replica is a worker process on this machine.

Replicas fork from a fork server that imported MLflow, pandas and scikit-learn once
(`backend.worker.preload`), so a replica of a small model is ready in a fraction of a second. Each
replica serves the framed protocol of `backend.worker.protocol` on a Unix domain socket under
`run_dir`; the engine keeps one persistent connection per replica and routes each request to the
READY replica of its version with the fewest requests in flight.

One monitor task per replica owns the process's whole life: it waits for the child's report on
its status pipe, confirms readiness with a ping, pings periodically, notices the process exit
through a pidfd of its own (loop.add_reader, nothing blocks the event loop), and cleans up.

The fork server is not a single point of failure: a replica's liveness is watched through its own
pidfd, not through multiprocessing's sentinel (the fork server's status pipe, which would report
every replica dead when the fork server dies); its exit code comes from the fork server when that
one can still tell. The engine watches the fork server too and starts a new one at once when it
dies, while the running replicas keep serving.

Nothing outlives the backend: the fork server is killed by the kernel when the backend's process
dies (a parent-death signal armed in `backend.worker.preload`; Linux), and a replica exits when its
status pipe reaches end of file (`backend.worker.replica`). A graceful stop drains for at most
`stop_timeout` seconds (RTSERVE_REPLICA_DRAIN_TIMEOUT_SECONDS, 10 by default): the replica itself
exits then, and the engine kills it if it did not.

Logs: a replica's stdout and stderr go through a pipe to a thread of the engine (`LogPump`), which
timestamps every line and writes `ReplicaSpec.log_path`, rotating it to `<log_path>.1` at
`log_max_bytes` (RTSERVE_REPLICA_LOG_MAX_BYTES, 5 MiB by default); see `backend.worker.logs`.
Reading the pipe outside the replica keeps what a crashing replica wrote last.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import itertools
import logging
import multiprocessing
import os
import shutil
import signal
import tempfile
import time
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.context import ForkServerContext
from multiprocessing.process import BaseProcess

from rtserve.server.engines.base import (
    InvocationResult,
    NoReadyReplica,
    ReplicaObservation,
    ReplicaSpec,
    ReplicaState,
)
from rtserve.server.worker.logs import BACKUP_SUFFIX, LogPump, RotatingLog, max_bytes_from_env
from rtserve.server.worker.protocol import WorkerClient
from rtserve.server.worker.replica import FORKSERVER_ENGINE_PID_ENV

logger = logging.getLogger(__name__)

# "__main__" first: the fork server imports the parent's main script once, instead of every
# replica re-running it (multiprocessing does that to unpickle functions defined in it).
FORKSERVER_PRELOAD = ["__main__", "rtserve.server.worker.preload"]
MAX_FAILED_PINGS = 3
# read_logs() answers for replicas long gone; this bounds how many the engine remembers.
MAX_REMEMBERED_LOGS = 10_000
# sun_path holds 108 bytes on Linux; stay well below it.
MAX_SOCKET_PATH = 100
_LIVE_STATES = (ReplicaState.STARTING, ReplicaState.READY, ReplicaState.STOPPING)
DRAIN_TIMEOUT_ENV = "RTSERVE_REPLICA_DRAIN_TIMEOUT_SECONDS"
DEFAULT_DRAIN_TIMEOUT = 10.0
# Once a replica exited, how long the fork server may take to report its exit code.
EXIT_STATUS_WAIT = 1.0
# The fork server dies with the thread that started it (prctl's parent-death signal is per thread),
# so it is started from this one, which lives as long as the process, never from an engine's own
# threads; engines of one process share the fork server.
_forkserver_parent = ThreadPoolExecutor(max_workers=1, thread_name_prefix="forkserver-parent")
# Fork servers seen dying: a replica they started has no exit code any more (multiprocessing says 255).
_dead_forkservers: set[int] = set()


@dataclass(eq=False)
class _Replica:
    spec: ReplicaSpec
    process: BaseProcess
    status_conn: Connection
    log_conn: Connection  # the write end of the log pipe, handed to the child
    log_read_fd: int
    socket_path: str
    started_at: float
    pid: int | None
    state: ReplicaState = ReplicaState.STARTING
    message: str = "starting"
    client: WorkerClient | None = None
    in_flight: int = 0
    dispatched: int = 0  # breaks ties between equally busy replicas, so sequential load spreads
    exited: asyncio.Event = field(default_factory=asyncio.Event)
    stop_requested: asyncio.Event = field(default_factory=asyncio.Event)
    stop_grace: float = 10.0
    monitor: asyncio.Task[None] | None = None
    log_pump: LogPump | None = None
    pidfd: int | None = None  # the replica's own liveness (Linux); None: the fork server's sentinel
    forkserver_pid: int | None = None  # the fork server that started it, and reports its exit code
    exit_code: int | None = None  # set with `exited`; None if nobody could tell

    def observe(self) -> ReplicaObservation:
        return ReplicaObservation(
            replica_id=self.spec.replica_id,
            model_name=self.spec.model_name,
            version=self.spec.version,
            state=self.state,
            message=self.message,
            started_at=self.started_at,
            pid=self.pid,
            in_flight=self.in_flight,
        )


class LocalEngine:
    """Runs replicas as local processes; implements `backend.engines.base.Engine`.

    `run_dir` holds the replicas' sockets. `health_interval` is the time between health pings of a
    READY replica; one that misses `MAX_FAILED_PINGS` pings in a row (each waiting `ping_timeout`)
    is killed and reported CRASHED. `stop_timeout` bounds a graceful stop: the replica stops waiting
    for its requests then, and is killed if it did not exit (default: RTSERVE_REPLICA_DRAIN_TIMEOUT_SECONDS,
    or 10 s). `log_max_bytes` is where a replica log rotates (default: RTSERVE_REPLICA_LOG_MAX_BYTES, or 5 MiB).
    """

    def __init__(
        self,
        run_dir: str,
        health_interval: float = 0.5,
        *,
        ping_timeout: float = 2.0,
        stop_timeout: float | None = None,
        close_timeout: float = 3.0,
        wall_clock: Callable[[], float] = time.time,
        log_max_bytes: int | None = None,
    ) -> None:
        self.run_dir = run_dir
        self.log_max_bytes = log_max_bytes if log_max_bytes is not None else max_bytes_from_env()
        self.health_interval = health_interval
        self.ping_timeout = ping_timeout
        self.stop_timeout = stop_timeout if stop_timeout is not None else drain_timeout_from_env()
        self.close_timeout = close_timeout
        self._wall_clock = wall_clock
        self._context: ForkServerContext | None = None
        # Process.start() talks to the fork server synchronously; it runs here, one at a time.
        self._spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="replica-spawner")
        self._replicas: dict[str, _Replica] = {}
        # Includes forgotten replicas whose process is still being reaped, so close() waits for them.
        self._monitors: set[asyncio.Task[None]] = set()
        self._log_paths: dict[str, str] = {}
        self._socket_names = itertools.count(1)
        self._socket_dir: str | None = None
        self._own_socket_dir = False
        self._forkserver_pid: int | None = None
        self._forkserver_pidfd: int | None = None
        self._forkserver_restart: asyncio.Task[None] | None = None
        self._closing = False

    async def start(self) -> None:
        """Start the pre-loaded fork server (its imports finish in the background)."""
        if self._context is not None:
            return
        os.makedirs(self.run_dir, exist_ok=True)
        self._socket_dir = self._choose_socket_dir()
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(FORKSERVER_PRELOAD)
        await self._ensure_forkserver()
        self._context = context

    async def _ensure_forkserver(self) -> int | None:
        """Start the fork server unless it runs (a dead one is replaced), and watch it; its pid."""
        pid = await asyncio.get_running_loop().run_in_executor(_forkserver_parent, _ensure_forkserver)
        if pid is not None and pid != self._forkserver_pid and not self._closing:
            self._watch_forkserver(pid)
        return pid

    def _watch_forkserver(self, pid: int) -> None:
        """Notice the fork server's death at once, rather than when the next replica needs it."""
        self._unwatch_forkserver()
        self._forkserver_pid = pid
        pidfd = _open_pidfd(pid)
        if pidfd is None:  # no pidfd (not Linux): the next replica's start replaces a dead fork server
            return
        self._forkserver_pidfd = pidfd
        asyncio.get_running_loop().add_reader(pidfd, self._on_forkserver_exit, pid)

    def _unwatch_forkserver(self) -> None:
        if self._forkserver_pidfd is not None:
            asyncio.get_running_loop().remove_reader(self._forkserver_pidfd)
            os.close(self._forkserver_pidfd)
            self._forkserver_pidfd = None

    def _on_forkserver_exit(self, pid: int) -> None:
        self._unwatch_forkserver()
        _dead_forkservers.add(pid)
        if self._closing:
            return
        logger.warning("The fork server (pid %d) died; running replicas keep serving; starting a new one", pid)
        self._forkserver_restart = asyncio.create_task(self._restart_forkserver(), name="forkserver-restart")

    async def _restart_forkserver(self) -> None:
        try:
            pid = await self._ensure_forkserver()
        except Exception:  # the next replica's start tries again
            logger.exception("Could not restart the fork server")
            return
        logger.info("Started a new fork server (pid %s)", pid)

    async def close(self) -> None:
        """Stop every replica (SIGTERM, SIGKILL after `close_timeout`) and release resources."""
        self._closing = True
        self._unwatch_forkserver()
        if self._forkserver_restart is not None:
            self._forkserver_restart.cancel()
        for replica in list(self._replicas.values()):
            self._request_stop(replica, self.close_timeout)
        if self._monitors:
            # The monitors SIGKILL whatever outlives close_timeout; the margin covers reaping.
            _, stuck = await asyncio.wait(self._monitors, timeout=self.close_timeout + 5.0)
            for monitor in stuck:
                monitor.cancel()
        for replica in self._replicas.values():
            _kill(replica)
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

        process = self._context.Process(
            target=run_replica,
            args=(spec, socket_path, child_conn, log_conn, self.stop_timeout),
            name=f"replica-{spec.replica_id}",
            daemon=False,  # a daemonic process may not start processes, and models' libraries do
        )
        self._remember_log(spec)
        replica = _Replica(
            spec=spec,
            process=process,
            status_conn=parent_conn,
            log_conn=log_conn,
            log_read_fd=log_read_fd,
            socket_path=socket_path,
            started_at=self._wall_clock(),
            pid=None,
            stop_grace=self.stop_timeout,
        )
        self._replicas[spec.replica_id] = replica
        replica.monitor = asyncio.create_task(
            self._supervise(replica, child_conn), name=f"replica-monitor:{spec.replica_id}"
        )
        self._monitors.add(replica.monitor)
        replica.monitor.add_done_callback(self._monitors.discard)
        _live_engines.add(self)

    async def stop_replica(self, replica_id: str) -> None:
        """Stop gracefully: no new requests, SIGTERM, in-flight ones finish (SIGKILL after `stop_timeout`).

        The replica is forgotten afterwards. Unknown ids are ignored, so a retried stop is harmless.
        """
        replica = self._replicas.get(replica_id)
        if replica is None:
            return
        self._request_stop(replica, self.stop_timeout)
        if replica.monitor is not None:
            await asyncio.shield(replica.monitor)
        self._replicas.pop(replica_id, None)

    def replicas(self) -> list[ReplicaObservation]:
        """A snapshot of every replica the engine knows, including FAILED and CRASHED ones."""
        return [replica.observe() for replica in self._replicas.values()]

    def forget(self, replica_id: str) -> None:
        """Drop a FAILED, CRASHED or STOPPED replica; its log stays readable through `read_logs`."""
        replica = self._replicas.get(replica_id)
        if replica is None:
            return
        if replica.state in _LIVE_STATES:
            raise ValueError(f"replica {replica_id!r} is {replica.state}; stop it instead of forgetting it")
        self._replicas.pop(replica_id)

    def read_logs(self, replica_id: str, max_bytes: int = 1_000_000) -> str:
        """The last `max_bytes` of the replica's log (its rotated part too), starting at a line boundary."""
        log_path = self._log_paths.get(replica_id)
        if log_path is None:
            raise KeyError(f"unknown replica {replica_id!r}")
        tail, truncated = _tail(log_path, max_bytes)
        if not truncated and len(tail) < max_bytes:
            older, older_truncated = _tail(log_path + BACKUP_SUFFIX, max_bytes - len(tail))
            tail, truncated = older + tail, older_truncated
        if truncated:
            tail = tail.split(b"\n", 1)[-1]  # drop the partial first line
        return tail.decode("utf-8", errors="replace")

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
            self._set_state(replica, ReplicaState.CRASHED, "lost its connection during a request")
            raise
        finally:
            replica.in_flight -= 1

    def _pick(self, model_name: str, version: str) -> _Replica:
        ready = [
            replica
            for replica in self._replicas.values()
            if replica.state is ReplicaState.READY
            and replica.spec.model_name == model_name
            and replica.spec.version == version
        ]
        if not ready:
            raise NoReadyReplica(f"no READY replica of version {version} of {model_name!r}")
        return min(ready, key=lambda replica: (replica.in_flight, replica.dispatched))

    async def _supervise(self, replica: _Replica, child_conn: Connection) -> None:
        if not await self._spawn(replica, child_conn):
            await self._release(replica)
            return
        exit_watch = asyncio.create_task(self._await_exit(replica), name=f"replica-exit:{replica.spec.replica_id}")
        try:
            if await self._wait_until_ready(replica):
                await self._watch(replica)
            await self._reap(replica)
        except Exception:
            logger.exception("Supervising replica %s failed", replica.spec.replica_id)
            self._set_state(replica, ReplicaState.CRASHED, "the engine lost track of the process; killed")
            _kill(replica)
        finally:
            exit_watch.cancel()
            await asyncio.gather(exit_watch, return_exceptions=True)
            await self._release(replica)

    async def _await_exit(self, replica: _Replica) -> None:
        """Set `exited` (and `exit_code`) once the process ended.

        The replica's own pidfd says when; the fork server's status pipe says with which code, a
        moment later, unless the fork server is gone (then the code is unknown). Without a pidfd the
        status pipe says both, and the fork server's death looks like the replica's.
        """
        sentinel = replica.process.sentinel
        if replica.pidfd is None:
            await _readable(sentinel)
        else:
            await _readable(replica.pidfd)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(EXIT_STATUS_WAIT):
                    await _readable(sentinel)
        code = replica.process.exitcode
        if code == 255 and replica.forkserver_pid in _dead_forkservers:  # multiprocessing's "no report"
            code = None
        replica.exit_code = code
        replica.exited.set()

    async def _spawn(self, replica: _Replica, child_conn: Connection) -> bool:
        """Fork the replica from the fork server (in a thread: the first fork waits for its imports)."""
        spec = replica.spec
        try:
            log = RotatingLog(spec.log_path, self.log_max_bytes)
        except OSError as exc:
            os.close(replica.log_read_fd)
            replica.log_conn.close()
            child_conn.close()
            self._set_state(replica, ReplicaState.FAILED, f"cannot open the replica log {spec.log_path}: {exc}")
            return False
        replica.log_pump = LogPump(replica.log_read_fd, log, name=f"replica-log:{spec.replica_id}")
        try:
            # Started here if it died, so that the fork server is never a child of the spawner thread.
            replica.forkserver_pid = await self._ensure_forkserver()
            await asyncio.get_running_loop().run_in_executor(self._spawner, replica.process.start)
        except Exception as exc:
            logger.exception("Could not start replica %s", spec.replica_id)
            self._set_state(replica, ReplicaState.FAILED, f"could not start the replica process: {exc}")
            return False
        finally:
            # The child has its copies; ours would hide the child's end of file (and stop the log pump).
            child_conn.close()
            replica.log_conn.close()
        replica.pid = replica.process.pid
        replica.pidfd = _open_pidfd(replica.pid) if replica.pid is not None else None
        logger.info("Started replica %s (pid %s) of %s/%s", spec.replica_id, replica.pid, spec.model_name, spec.version)
        if replica.stop_requested.is_set():  # stop_replica came while it was being forked
            _signal(replica, signal.SIGTERM)
        return True

    async def _wait_until_ready(self, replica: _Replica) -> bool:
        """STARTING -> READY (True), or FAILED / stop requested (False)."""
        status = await self._wait_for_status(replica)
        if status is None:
            await _first(replica.exited.wait(), replica.stop_requested.wait())
            if replica.exited.is_set() and not replica.stop_requested.is_set():
                await self._flush_log(replica)
                reason = _exit_reason(replica)
                self._set_state(replica, ReplicaState.FAILED, f"{reason} before it was ready; see the replica log")
            return False
        if status[0] == "failed":
            message = str(status[1]) if len(status) > 1 else "the model could not be loaded"
            # The replica exits at once; waiting for it lets its log (the traceback) be complete
            # by the time anyone sees FAILED.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    await replica.exited.wait()
            await self._flush_log(replica)
            self._set_state(replica, ReplicaState.FAILED, message)
            return False
        client = WorkerClient(replica.socket_path)
        try:
            async with asyncio.timeout(self.ping_timeout):
                await client.connect()
            healthy = await client.ping(self.ping_timeout)
        except (OSError, TimeoutError):
            healthy = False
        replica.client = client
        if not healthy:
            self._set_state(replica, ReplicaState.FAILED, "reported ready but did not answer a health check")
            _kill(replica)
            return False
        if replica.stop_requested.is_set():
            return False
        self._set_state(replica, ReplicaState.READY, "ready")
        logger.info("Replica %s is READY", replica.spec.replica_id)
        return True

    async def _wait_for_status(self, replica: _Replica) -> tuple[str, ...] | None:
        """The child's report, or None if it exited or a stop was requested first."""
        loop = asyncio.get_running_loop()
        readable = asyncio.Event()
        fd = replica.status_conn.fileno()
        loop.add_reader(fd, readable.set)
        try:
            await _first(readable.wait(), replica.exited.wait(), replica.stop_requested.wait())
        finally:
            loop.remove_reader(fd)
        if not readable.is_set():
            return None
        try:
            status = replica.status_conn.recv()  # readable: the child wrote one small message, or died
        except (EOFError, OSError):
            return None
        return tuple(status) if isinstance(status, tuple) and status else None

    async def _watch(self, replica: _Replica) -> None:
        """Ping a READY replica every `health_interval` until it exits, hangs or is asked to stop."""
        assert replica.client is not None
        failed_pings = 0
        while True:
            await _first(
                replica.exited.wait(),
                replica.client.wait_closed(),
                replica.stop_requested.wait(),
                timeout=self.health_interval,
            )
            if replica.stop_requested.is_set():
                return
            if replica.exited.is_set() or not replica.client.connected:
                await self._record_crash(replica)
                return
            if await replica.client.ping(self.ping_timeout):
                failed_pings = 0
                continue
            failed_pings += 1
            if failed_pings >= MAX_FAILED_PINGS:
                logger.error("Replica %s missed %d health checks; killing it", replica.spec.replica_id, failed_pings)
                _kill(replica)
                self._set_state(replica, ReplicaState.CRASHED, f"did not answer {failed_pings} health checks; killed")
                return

    async def _record_crash(self, replica: _Replica) -> None:
        # The connection usually drops a moment before the exit status is known; wait for it briefly.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.0):
                await replica.exited.wait()
        if replica.exited.is_set():
            message = f"{_exit_reason(replica)} while it was serving; see the replica log"
            await self._flush_log(replica)
        else:
            _kill(replica)
            message = "closed its connection unexpectedly; killed"
        if not replica.stop_requested.is_set():
            self._set_state(replica, ReplicaState.CRASHED, message, force=True)
            logger.error("Replica %s crashed: %s", replica.spec.replica_id, message)

    async def _reap(self, replica: _Replica) -> None:
        """Wait for the process to end: up to its stop grace if it was asked to stop, else kill it."""
        if not replica.exited.is_set():
            if replica.stop_requested.is_set():
                try:
                    async with asyncio.timeout(replica.stop_grace):
                        await replica.exited.wait()
                except TimeoutError:
                    logger.warning(
                        "Replica %s did not stop in %g s; killing it", replica.spec.replica_id, replica.stop_grace
                    )
            # A FAILED replica exits by itself at once; anything still running here is killed.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0 if replica.state is ReplicaState.FAILED else 0):
                    await replica.exited.wait()
            _kill(replica)
            await replica.exited.wait()
        if replica.stop_requested.is_set():
            await self._flush_log(replica)  # its last lines ("Stopped") are in the log once it is STOPPED
            self._set_state(replica, ReplicaState.STOPPED, f"stopped ({_exit_reason(replica)})", force=True)

    async def _flush_log(self, replica: _Replica, timeout: float = 1.0) -> None:
        """Wait (briefly) until the log pump wrote what the exited replica left in its pipe."""
        pump = replica.log_pump
        if pump is not None:
            await asyncio.get_running_loop().run_in_executor(None, pump.join, timeout)

    async def _release(self, replica: _Replica) -> None:
        if replica.client is not None:
            await replica.client.close()
        replica.status_conn.close()
        if replica.pidfd is not None:  # later signals (close(), exit) fall back to the pid
            os.close(replica.pidfd)
            replica.pidfd = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(replica.socket_path)
        with contextlib.suppress(ValueError):
            replica.process.close()

    def _request_stop(self, replica: _Replica, grace: float) -> None:
        if replica.stop_requested.is_set():
            return
        replica.stop_grace = grace
        replica.stop_requested.set()
        if replica.state in _LIVE_STATES:
            self._set_state(replica, ReplicaState.STOPPING, "stopping")
        if not replica.exited.is_set():
            _signal(replica, signal.SIGTERM)

    def _set_state(self, replica: _Replica, state: ReplicaState, message: str, force: bool = False) -> None:
        """Change the state; once stopping or dead, only `force` (the final word) changes it."""
        if not force and replica.state not in (ReplicaState.STARTING, ReplicaState.READY):
            return
        replica.state = state
        replica.message = message

    def _remember_log(self, spec: ReplicaSpec) -> None:
        self._log_paths.pop(spec.replica_id, None)
        self._log_paths[spec.replica_id] = spec.log_path
        while len(self._log_paths) > MAX_REMEMBERED_LOGS:  # oldest first: dicts keep insertion order
            del self._log_paths[next(iter(self._log_paths))]

    def _choose_socket_dir(self) -> str:
        socket_dir = os.path.join(os.path.abspath(self.run_dir), "s")
        if len(os.path.join(socket_dir, "4194304-99999.sock")) <= MAX_SOCKET_PATH:
            os.makedirs(socket_dir, exist_ok=True)
            return socket_dir
        # A deep run_dir would overflow sun_path; sockets then live in a short private temp dir.
        self._own_socket_dir = True
        return tempfile.mkdtemp(prefix="rtserve-")


def _tail(path: str, max_bytes: int) -> tuple[bytes, bool]:
    """The last `max_bytes` of the file (empty if it is missing), and whether anything came before them."""
    try:
        with open(path, "rb") as log:
            size = log.seek(0, os.SEEK_END)
            log.seek(max(0, size - max_bytes))
            return log.read(max_bytes), size > max_bytes
    except FileNotFoundError:
        return b"", False


async def _first(*waits: object, timeout: float | None = None) -> None:
    """Return when the first of the awaitables finishes (or after `timeout`), cancelling the rest."""
    tasks = [asyncio.ensure_future(wait) for wait in waits]  # type: ignore[call-overload]
    try:
        await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


async def _readable(fd: int) -> None:
    """Return once `fd` is readable (for a pidfd: once its process exited)."""
    loop = asyncio.get_running_loop()
    ready = loop.create_future()
    loop.add_reader(fd, lambda: ready.done() or ready.set_result(None))
    try:
        await ready
    finally:
        loop.remove_reader(fd)


def _open_pidfd(pid: int) -> int | None:
    """A pidfd for `pid` (Linux 5.3+): readable once the process exits, and safe to signal; else None."""
    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is None:
        return None
    try:
        return pidfd_open(pid)
    except OSError:  # already gone and reaped (the sentinel tells), or pidfds unsupported
        return None


def _ensure_forkserver() -> int | None:
    """On `_forkserver_parent`: start the fork server unless it runs (or replace a dead one); its pid."""
    from multiprocessing import forkserver

    os.environ[FORKSERVER_ENGINE_PID_ENV] = str(os.getpid())  # lets the new fork server arm its death signal
    try:
        forkserver.ensure_running()
    finally:
        os.environ.pop(FORKSERVER_ENGINE_PID_ENV, None)
    return getattr(forkserver._forkserver, "_forkserver_pid", None)


def drain_timeout_from_env(environ: dict[str, str] | None = None) -> float:
    """RTSERVE_REPLICA_DRAIN_TIMEOUT_SECONDS, or 10 s."""
    raw = (environ if environ is not None else os.environ).get(DRAIN_TIMEOUT_ENV, "")
    if not raw.strip():
        return DEFAULT_DRAIN_TIMEOUT
    try:
        return max(0.0, float(raw))
    except ValueError:
        raise ValueError(f"{DRAIN_TIMEOUT_ENV} must be a number of seconds, got {raw!r}") from None


def _kill(replica: _Replica) -> None:
    _signal(replica, signal.SIGKILL)


def _signal(replica: _Replica, signum: int) -> None:
    """Signal the replica unless it is known to have exited (its pid may belong to another by then)."""
    if replica.exited.is_set():
        return
    with contextlib.suppress(ValueError, ProcessLookupError):
        if replica.pidfd is not None:
            signal.pidfd_send_signal(replica.pidfd, signum)  # never reaches a process that reused the pid
        elif replica.pid is not None and replica.process.exitcode is None:
            os.kill(replica.pid, signum)


# Engines with live replicas. At interpreter exit multiprocessing joins every non-daemonic child,
# and a replica only stops when asked; this hook, registered after multiprocessing's, runs first.
_live_engines: weakref.WeakSet[LocalEngine] = weakref.WeakSet()


@atexit.register
def _terminate_replicas_at_exit() -> None:
    for engine in list(_live_engines):
        for replica in list(engine._replicas.values()):
            _signal(replica, signal.SIGTERM)


def _exit_reason(replica: _Replica) -> str:
    if not replica.exited.is_set():
        return "is still running"
    code = replica.exit_code
    if code is None:
        return "exited (exit status unknown: the fork server that started it is gone)"
    if code < 0:
        try:
            return f"was killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"
