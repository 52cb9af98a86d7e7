"""A pre-loaded fork server per model environment, started with that environment's interpreter.

multiprocessing keeps one global fork server per process, run by the server's own interpreter. A
model environment (backend/environments) needs its own: the same `multiprocessing.forkserver`
machinery (a `ForkServer` instance, its socket protocol, its `main`), started with the environment's
`bin/python`, and a `Process` whose start talks to that instance instead of the global one. What a
forked replica inherits from the parent's preparation data leaves out the server's `sys.path` and
`__main__`, so the replica imports from its environment only.
"""

from __future__ import annotations

import copyreg
import io
import os
import threading
from multiprocessing import forkserver, popen_forkserver, process, reduction, spawn, util
from multiprocessing.context import ForkServerProcess, set_spawning_popen
from typing import Any

# The server's own `sys.path`, main script and argv must not reach a replica of an environment.
_SERVER_ONLY_KEYS = ("sys_path", "sys_argv", "init_main_from_path", "init_main_from_name")
PRELOAD = ["rtserve.server.worker.preload"]

_servers: dict[str, EnvironmentForkServer] = {}
_servers_lock = threading.Lock()


class EnvironmentForkServer(forkserver.ForkServer):
    """multiprocessing's fork server, run by `python` (an environment's interpreter)."""

    def __init__(self, python: str) -> None:
        super().__init__()
        self.python = python
        self.set_forkserver_preload(PRELOAD)

    def ensure_running(self) -> None:
        # multiprocessing starts a fork server with spawn's (process-wide) executable. Environment fork
        # servers and the shared one are all started on one thread (forkserver._forkserver_parent), so
        # swapping it there for the call is seen by no other start.
        server_python = spawn.get_executable()
        spawn.set_executable(self.python)
        try:
            super().ensure_running()
        finally:
            spawn.set_executable(server_python)

    @property
    def pid(self) -> int | None:
        return self._forkserver_pid  # type: ignore[attr-defined]

    def stop(self) -> None:
        self._stop()  # type: ignore[attr-defined]


def server_for(python: str) -> EnvironmentForkServer:
    """The fork server of the environment whose interpreter is `python` (one per process)."""
    with _servers_lock:
        server = _servers.get(python)
        if server is None:
            server = _servers[python] = EnvironmentForkServer(python)
        return server


class _EnvironmentPopen(popen_forkserver.Popen):
    def __init__(self, process_obj: EnvironmentProcess) -> None:
        self._server = server_for(process_obj.python)
        super().__init__(process_obj)

    def _launch(self, process_obj: EnvironmentProcess) -> None:
        # popen_forkserver.Popen._launch, with the environment's fork server and without server-only data.
        prep_data = spawn.get_preparation_data(process_obj._name)  # type: ignore[attr-defined]
        for key in _SERVER_ONLY_KEYS:
            prep_data.pop(key, None)
        buf = io.BytesIO()
        set_spawning_popen(self)
        try:
            reduction.dump(prep_data, buf)
            reduction.dump(process_obj, buf)
        finally:
            set_spawning_popen(None)
        self.sentinel, w = self._server.connect_to_new_process(self._fds)  # type: ignore[attr-defined]
        _parent_w = os.dup(w)
        self.finalizer = util.Finalize(self, util.close_fds, (_parent_w, self.sentinel))  # type: ignore[attr-defined]
        with open(w, "wb", closefd=True) as f:
            f.write(buf.getbuffer())
        self.pid = forkserver.read_signed(self.sentinel)


class EnvironmentProcess(process.BaseProcess):
    """A replica process forked from the fork server of the environment whose interpreter is `python`."""

    _start_method = "forkserver"

    def __init__(self, python: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.python = python

    @staticmethod
    def _Popen(process_obj: EnvironmentProcess) -> _EnvironmentPopen:
        return _EnvironmentPopen(process_obj)

    def __reduce__(self) -> tuple[object, ...]:
        # The replica unpickles a plain ForkServerProcess: this module (the engine) is no import of the
        # environment's, whose interpreter has only the worker's code.
        state = dict(self.__dict__)
        state.pop("python", None)
        return (copyreg._reconstructor, (ForkServerProcess, object, None), state)  # type: ignore[attr-defined]
