"""A replica's stdout and stderr: into the engine's log pipe, or captured by the replica itself.

The local engine reads each replica's output from a pipe, outside the replica (`redirect_output`
points fds 1 and 2 at it): output written just before a crash is not lost with the process, and the
replica's hot path pays only a write to a pipe. `capture_output_in_process` does the same inside
the process, for a replica run without an engine. The file format is `backend.replica_logs`.
"""

from __future__ import annotations

import contextlib
import os
import sys

from rtserve.server.replica_logs import DEFAULT_MAX_BYTES, LogPump, RotatingLog


def redirect_output(write_fd: int) -> None:
    """Point this process's fds 1 and 2 at `write_fd`, so native libraries' output lands there too."""
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.flush()
    os.dup2(write_fd, 1)
    os.dup2(write_fd, 2)
    for name, fd in (("stdout", 1), ("stderr", 2)):
        stream = getattr(sys, name)
        if stream is None or not hasattr(stream, "reconfigure"):
            # The engine's own process may have run without these (a service manager, pythonw).
            setattr(sys, name, open(fd, "w", buffering=1, closefd=False))
        else:
            stream.reconfigure(line_buffering=True)


class InProcessCapture:
    """Output captured by a pump thread of this very process (see `capture_output_in_process`)."""

    def __init__(self, pump: LogPump) -> None:
        self._pump = pump

    def close(self, timeout: float = 2.0) -> None:
        """Flush: end the pipe (fds 1 and 2 go to /dev/null) and wait for the pump to write what it holds."""
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.dup2(null, 2)
        os.close(null)
        self._pump.join(timeout)


def capture_output_in_process(log_path: str, max_bytes: int = DEFAULT_MAX_BYTES) -> InProcessCapture:
    """Send fds 1 and 2 through a pipe to a pump thread of this process that writes `log_path`.

    The log rotates at `max_bytes` (see `backend.replica_logs`).
    """
    log = RotatingLog(log_path, max_bytes)
    read_fd, write_fd = os.pipe()
    pump = LogPump(read_fd, log)
    redirect_output(write_fd)
    os.close(write_fd)
    return InProcessCapture(pump)
