"""Replica logs across machines: the actor writes its own log, and the engine keeps a copy on the backend.

An actor's stdout and stderr (fds 1 and 2, so native libraries' output too) go through a pipe to a
thread of the actor that writes a rotated log on the actor's node (`backend.replica_logs` format),
and also keeps the newest `TAIL_BYTES` in memory, numbered from the log's start (`TailedLog`). The
engine asks for what came after the position it copied last (`TailedLog.since`, through the actor's
`status` method) and appends it, timestamps kept, to `ReplicaSpec.log_path` on the backend's disk
(`LogMirror`): the log routes read that file as they read a local replica's, and it stays readable
after the actor is gone (FAILED, CRASHED, STOPPED). What the actor wrote after the last copy before
it died is only in its own file on its node.
"""

from __future__ import annotations

import logging
import os
import threading

from rtserve.server.replica_logs import DEFAULT_MAX_BYTES, LogPump, RotatingLog
from rtserve.server.worker.logs import InProcessCapture, redirect_output

logger = logging.getLogger(__name__)

# The newest output an actor keeps in memory for the engine to copy.
TAIL_BYTES = 1024 * 1024
# The most the engine copies in one call (whole lines, unless one line alone is longer).
COPY_BYTES = 256 * 1024


class TailedLog(RotatingLog):
    """A `RotatingLog` that also keeps its newest `keep_bytes` in memory, numbered from the first byte written."""

    def __init__(self, path: str, max_bytes: int = DEFAULT_MAX_BYTES, keep_bytes: int = TAIL_BYTES) -> None:
        super().__init__(path, max_bytes)
        self._keep = keep_bytes
        self._lock = threading.Lock()
        self._tail = bytearray()
        self._tail_start = 0  # the position of self._tail[0] in everything ever written

    def _append(self, data: bytes) -> None:
        super()._append(data)
        with self._lock:
            self._tail += data
            excess = len(self._tail) - self._keep
            if excess > self._keep:  # trim in large steps, not at every write
                del self._tail[:excess]
                self._tail_start += excess

    @property
    def position(self) -> int:
        """How many bytes were written in all."""
        with self._lock:
            return self._tail_start + len(self._tail)

    def since(self, position: int, max_bytes: int = COPY_BYTES) -> tuple[int, bytes]:
        """(where the returned bytes start, whole lines written from `position` on, at most about `max_bytes`).

        The start is later than `position` when that part is no longer kept in memory.
        """
        with self._lock:
            start = min(max(position, self._tail_start), self._tail_start + len(self._tail))
            chunk = bytes(self._tail[start - self._tail_start : start - self._tail_start + max_bytes])
        if len(chunk) == max_bytes:
            end = chunk.rfind(b"\n") + 1
            if end > 0:  # else one line longer than max_bytes: it goes out in pieces
                chunk = chunk[:end]
        return start, chunk


def capture_output(log_path: str, max_bytes: int) -> tuple[InProcessCapture, TailedLog]:
    """Send this process's fds 1 and 2 through a pipe to a thread writing a `TailedLog` at `log_path`."""
    log = TailedLog(log_path, max_bytes)
    read_fd, write_fd = os.pipe()
    pump = LogPump(read_fd, log, name="replica-log")
    redirect_output(write_fd)
    os.close(write_fd)
    return InProcessCapture(pump), log


class LogMirror:
    """The backend's copy of one actor's log, at `ReplicaSpec.log_path`, rotated like any replica log.

    `position` is how much of the actor's log was copied; the engine asks the actor for what follows.
    """

    def __init__(self, path: str, max_bytes: int, position: int = 0) -> None:
        self.path = path
        self.position = position
        self._log = RotatingLog(path, max_bytes)

    def write(self, start: int, data: bytes) -> None:
        """Append what the actor sent (it starts at `start` of its log)."""
        if start > self.position:
            lost = start - self.position
            self._log.feed(f"rtserve: {lost} bytes of this replica's log were not copied (see its node)\n".encode())
        if data:
            self._log.append_stamped(data)
        self.position = start + len(data)

    def note(self, message: str) -> None:
        """A line of the engine's own (e.g. why the actor is gone), timestamped now."""
        self._log.feed(f"rtserve: {message}\n".encode())

    def close(self) -> None:
        self._log.close()


def open_mirror(replica_id: str, log_path: str, max_bytes: int, position: int) -> LogMirror | None:
    """The copy of the replica's log, from `position` of the actor's; None (and a warning) if it cannot be written."""
    try:
        return LogMirror(log_path, max_bytes, position)
    except OSError as exc:
        logger.warning("Cannot write the log of replica %s to %s: %s", replica_id, log_path, exc)
        return None
