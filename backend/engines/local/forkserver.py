"""The pre-loaded fork server replicas fork from, and the engine's watch over it.

The fork server imported MLflow, pandas and scikit-learn once (`backend.worker.preload`), so a
replica of a small model is ready in a fraction of a second. It is not a single point of failure:
each replica's liveness is watched through its own pidfd (`backend.engines.local.supervision`), not
through multiprocessing's sentinel (the fork server's status pipe, which would report every replica
dead when the fork server dies), and `ForkServer` notices the fork server's death at once and starts
a new one, while the running replicas keep serving. It dies with the backend's process: a
parent-death signal armed in `backend.worker.preload` (Linux).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from concurrent.futures import ThreadPoolExecutor

from rtserve.server.engines.local.environment_forkserver import server_for
from rtserve.server.worker.replica import FORKSERVER_ENGINE_PID_ENV

logger = logging.getLogger(__name__)

# "__main__" first: the fork server imports the parent's main script once, instead of every
# replica re-running it (multiprocessing does that to unpickle functions defined in it).
FORKSERVER_PRELOAD = ["__main__", "rtserve.server.worker.preload"]
# The fork server dies with the thread that started it (prctl's parent-death signal is per thread),
# so it is started from this one, which lives as long as the process, never from an engine's own
# threads; engines of one process share the fork server.
_forkserver_parent = ThreadPoolExecutor(max_workers=1, thread_name_prefix="forkserver-parent")
# Fork servers seen dying: a replica they started has no exit code any more (multiprocessing says 255).
_dead_forkservers: set[int] = set()


def died(pid: int | None) -> bool:
    """True if the fork server `pid` was seen dying (it can no longer report its replicas' exit codes)."""
    return pid in _dead_forkservers


class ForkServer:
    """One engine's handle on a fork server: start it, watch it, replace it when it dies.

    `python` None is the shared fork server, run by the server's own interpreter; otherwise the fork
    server of the model environment whose interpreter `python` is (`environment_forkserver`).
    """

    def __init__(self, python: str | None = None) -> None:
        self.python = python
        self._pid: int | None = None
        self._pidfd: int | None = None
        self._restart: asyncio.Task[None] | None = None
        self._closing = False

    async def ensure(self) -> int | None:
        """Start the fork server unless it runs (a dead one is replaced), and watch it; its pid."""
        start = _ensure_forkserver if self.python is None else functools.partial(_ensure_environment, self.python)
        pid = await asyncio.get_running_loop().run_in_executor(_forkserver_parent, start)
        if pid is not None and pid != self._pid and not self._closing:
            self._watch(pid)
        return pid

    def close(self) -> None:
        """Stop watching (and restarting) the fork server."""
        self._closing = True
        self._unwatch()
        if self._restart is not None:
            self._restart.cancel()

    def _watch(self, pid: int) -> None:
        """Notice the fork server's death at once, rather than when the next replica needs it."""
        self._unwatch()
        self._pid = pid
        pidfd = open_pidfd(pid)
        if pidfd is None:  # no pidfd (not Linux): the next replica's start replaces a dead fork server
            return
        self._pidfd = pidfd
        asyncio.get_running_loop().add_reader(pidfd, self._on_exit, pid)

    def _unwatch(self) -> None:
        if self._pidfd is not None:
            asyncio.get_running_loop().remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None

    def _on_exit(self, pid: int) -> None:
        self._unwatch()
        _dead_forkservers.add(pid)
        if self._closing:
            return
        logger.warning(
            "The fork server (pid %d%s) died; running replicas keep serving; starting a new one", pid, self._label()
        )
        self._restart = asyncio.create_task(self._restart_now(), name="forkserver-restart")

    async def _restart_now(self) -> None:
        try:
            pid = await self.ensure()
        except Exception:  # the next replica's start tries again
            logger.exception("Could not restart the fork server")
            return
        logger.info("Started a new fork server (pid %s%s)", pid, self._label())

    def _label(self) -> str:
        return "" if self.python is None else f", environment {self.python}"


def open_pidfd(pid: int) -> int | None:
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


def _ensure_environment(python: str) -> int | None:
    """On `_forkserver_parent`: `_ensure_forkserver` for the fork server of the environment of `python`."""
    server = server_for(python)
    os.environ[FORKSERVER_ENGINE_PID_ENV] = str(os.getpid())
    try:
        server.ensure_running()
    finally:
        os.environ.pop(FORKSERVER_ENGINE_PID_ENV, None)
    return server.pid
