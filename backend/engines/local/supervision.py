"""How the local engine supervises a replica's process, from fork to reaping.

One monitor task per replica (`Supervisor.supervise`) owns the process's whole life: it forks the
replica from the fork server, waits for the child's report on its status pipe, confirms readiness
with a ping, pings periodically, notices the process exit through a pidfd of its own
(loop.add_reader, nothing blocks the event loop), and cleans up. A replica's exit code comes from
the fork server when that one can still tell (see `backend.engines.local.forkserver`).

Nothing outlives the backend: a replica exits when its status pipe reaches end of file
(`backend.worker.replica`). A graceful stop drains for at most the replica's stop grace: the
replica itself exits then, and the monitor kills it if it did not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Awaitable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from rtserve.server.engines.base import ReplicaState
from rtserve.server.engines.local.client import WorkerClient
from rtserve.server.engines.local.forkserver import ForkServer, open_pidfd
from rtserve.server.engines.local.forkserver import died as forkserver_died
from rtserve.server.engines.local.logs import start_pump
from rtserve.server.engines.replicas import ReplicaRecord
from rtserve.server.replica_logs import LogPump

logger = logging.getLogger(__name__)

MAX_FAILED_PINGS = 3
# Once a replica exited, how long the fork server may take to report its exit code.
EXIT_STATUS_WAIT = 1.0


@dataclass(eq=False, kw_only=True)
class Replica(ReplicaRecord):
    """One replica process and what the engine knows of it; its monitor task changes it."""

    process: BaseProcess
    status_conn: Connection
    log_conn: Connection  # the write end of the log pipe, handed to the child
    log_read_fd: int
    socket_path: str
    client: WorkerClient | None = None
    exited: asyncio.Event = field(default_factory=asyncio.Event)
    log_pump: LogPump | None = None
    pidfd: int | None = None  # the replica's own liveness (Linux); None: the fork server's sentinel
    forkserver_pid: int | None = None  # the fork server that started it, and reports its exit code
    forkserver: ForkServer | None = None  # its model environment's fork server; None: the engine's shared one
    exit_code: int | None = None  # set with `exited`; None if nobody could tell

    def request_stop(self, grace: float) -> bool:
        """Ask the process to stop (SIGTERM); it may drain for `grace` seconds before it is killed."""
        asked = super().request_stop(grace)
        if asked and not self.exited.is_set():
            signal_replica(self, signal.SIGTERM)
        return asked


class Supervisor:
    """Runs the monitor of each replica of one engine.

    `health_interval` is the time between health pings of a READY replica; one that misses
    `MAX_FAILED_PINGS` pings in a row (each waiting `ping_timeout`) is killed and reported CRASHED.
    Replicas are forked on `spawner` (Process.start() talks to the fork server synchronously) and
    their logs rotate at `log_max_bytes`.
    """

    def __init__(
        self,
        *,
        forkserver: ForkServer,
        spawner: ThreadPoolExecutor,
        health_interval: float,
        ping_timeout: float,
        log_max_bytes: int,
    ) -> None:
        self._forkserver = forkserver
        self._spawner = spawner
        self.health_interval = health_interval
        self.ping_timeout = ping_timeout
        self.log_max_bytes = log_max_bytes

    async def supervise(self, replica: Replica, child_conn: Connection) -> None:
        """The replica's whole life: fork, STARTING -> READY or FAILED, health checks, exit, cleanup."""
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
            replica.set_state(ReplicaState.CRASHED, "the engine lost track of the process; killed")
            kill(replica)
        finally:
            exit_watch.cancel()
            await asyncio.gather(exit_watch, return_exceptions=True)
            await self._release(replica)

    async def _await_exit(self, replica: Replica) -> None:
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
        if code == 255 and forkserver_died(replica.forkserver_pid):  # multiprocessing's "no report"
            code = None
        replica.exit_code = code
        replica.exited.set()

    async def _spawn(self, replica: Replica, child_conn: Connection) -> bool:
        """Fork the replica from the fork server (in a thread: the first fork waits for its imports)."""
        spec = replica.spec
        try:
            replica.log_pump = start_pump(
                replica.log_read_fd, spec.log_path, self.log_max_bytes, name=f"replica-log:{spec.replica_id}"
            )
        except OSError as exc:
            os.close(replica.log_read_fd)
            replica.log_conn.close()
            child_conn.close()
            replica.set_state(ReplicaState.FAILED, f"cannot open the replica log {spec.log_path}: {exc}")
            return False
        try:
            # Started here if it died, so that the fork server is never a child of the spawner thread.
            replica.forkserver_pid = await (replica.forkserver or self._forkserver).ensure()
            await asyncio.get_running_loop().run_in_executor(self._spawner, replica.process.start)
        except Exception as exc:
            logger.exception("Could not start replica %s", spec.replica_id)
            replica.set_state(ReplicaState.FAILED, f"could not start the replica process: {exc}")
            return False
        finally:
            # The child has its copies; ours would hide the child's end of file (and stop the log pump).
            child_conn.close()
            replica.log_conn.close()
        replica.pid = replica.process.pid
        replica.pidfd = open_pidfd(replica.pid) if replica.pid is not None else None
        logger.info("Started replica %s (pid %s) of %s/%s", spec.replica_id, replica.pid, spec.model_name, spec.version)
        if replica.stop_requested.is_set():  # stop_replica came while it was being forked
            signal_replica(replica, signal.SIGTERM)
        return True

    async def _wait_until_ready(self, replica: Replica) -> bool:
        """STARTING -> READY (True), or FAILED / stop requested (False)."""
        status = await self._wait_for_status(replica)
        if status is None:
            await first(replica.exited.wait(), replica.stop_requested.wait())
            if replica.exited.is_set() and not replica.stop_requested.is_set():
                await self._flush_log(replica)
                reason = exit_reason(replica)
                replica.set_state(ReplicaState.FAILED, f"{reason} before it was ready; see the replica log")
            return False
        if status[0] == "failed":
            message = str(status[1]) if len(status) > 1 else "the model could not be loaded"
            # The replica exits at once; waiting for it lets its log (the traceback) be complete
            # by the time anyone sees FAILED.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    await replica.exited.wait()
            await self._flush_log(replica)
            replica.set_state(ReplicaState.FAILED, message)
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
            replica.set_state(ReplicaState.FAILED, "reported ready but did not answer a health check")
            kill(replica)
            return False
        if replica.stop_requested.is_set():
            return False
        replica.set_state(ReplicaState.READY, "ready")
        logger.info("Replica %s is READY", replica.spec.replica_id)
        return True

    async def _wait_for_status(self, replica: Replica) -> tuple[str, ...] | None:
        """The child's report, or None if it exited or a stop was requested first."""
        loop = asyncio.get_running_loop()
        readable = asyncio.Event()
        fd = replica.status_conn.fileno()
        loop.add_reader(fd, readable.set)
        try:
            await first(readable.wait(), replica.exited.wait(), replica.stop_requested.wait())
        finally:
            loop.remove_reader(fd)
        if not readable.is_set():
            return None
        try:
            status = replica.status_conn.recv()  # readable: the child wrote one small message, or died
        except (EOFError, OSError):
            return None
        return tuple(status) if isinstance(status, tuple) and status else None

    async def _watch(self, replica: Replica) -> None:
        """Ping a READY replica every `health_interval` until it exits, hangs or is asked to stop."""
        assert replica.client is not None
        failed_pings = 0
        while True:
            await first(
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
                kill(replica)
                replica.set_state(ReplicaState.CRASHED, f"did not answer {failed_pings} health checks; killed")
                return

    async def _record_crash(self, replica: Replica) -> None:
        # The connection usually drops a moment before the exit status is known; wait for it briefly.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.0):
                await replica.exited.wait()
        if replica.exited.is_set():
            message = f"{exit_reason(replica)} while it was serving; see the replica log"
            await self._flush_log(replica)
        else:
            kill(replica)
            message = "closed its connection unexpectedly; killed"
        if not replica.stop_requested.is_set():
            replica.set_state(ReplicaState.CRASHED, message, force=True)
            logger.error("Replica %s crashed: %s", replica.spec.replica_id, message)

    async def _reap(self, replica: Replica) -> None:
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
            kill(replica)
            await replica.exited.wait()
        if replica.stop_requested.is_set():
            await self._flush_log(replica)  # its last lines ("Stopped") are in the log once it is STOPPED
            replica.set_state(ReplicaState.STOPPED, f"stopped ({exit_reason(replica)})", force=True)

    async def _flush_log(self, replica: Replica, timeout: float = 1.0) -> None:
        """Wait (briefly) until the log pump wrote what the exited replica left in its pipe."""
        pump = replica.log_pump
        if pump is not None:
            await asyncio.get_running_loop().run_in_executor(None, pump.join, timeout)

    async def _release(self, replica: Replica) -> None:
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


async def first(*waits: Awaitable[object], timeout: float | None = None) -> None:
    """Return when the first of the awaitables finishes (or after `timeout`), cancelling the rest."""
    tasks = [asyncio.ensure_future(wait) for wait in waits]
    try:
        await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


async def _readable(fd: int) -> None:
    """Return once `fd` is readable (for a pidfd: once its process exited)."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def _mark_ready() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fd, _mark_ready)
    try:
        await ready
    finally:
        loop.remove_reader(fd)


def kill(replica: Replica) -> None:
    signal_replica(replica, signal.SIGKILL)


def signal_replica(replica: Replica, signum: int) -> None:
    """Signal the replica unless it is known to have exited (its pid may belong to another by then)."""
    if replica.exited.is_set():
        return
    with contextlib.suppress(ValueError, ProcessLookupError):
        if replica.pidfd is not None:
            signal.pidfd_send_signal(replica.pidfd, signum)  # never reaches a process that reused the pid
        elif replica.pid is not None and replica.process.exitcode is None:
            os.kill(replica.pid, signum)


def exit_reason(replica: Replica) -> str:
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
