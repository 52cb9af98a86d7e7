"""The local engine's side of replica logs: pumping each replica's output into its log, and reading it back.

A replica's stdout and stderr go through a pipe to a thread of the engine (`LogPump`), which
timestamps every line and writes `ReplicaSpec.log_path`, rotating it to `<log_path>.1` at the
engine's `log_max_bytes`. Reading the pipe outside the replica keeps what a crashing replica wrote
last. The file format, its writer and its one reader are `backend.replica_logs`.
"""

from __future__ import annotations

from rtserve.server.replica_logs import LogPump, RotatingLog, read_log_tail

# read_logs() answers for replicas long gone; this bounds how many the engine remembers.
MAX_REMEMBERED_LOGS = 10_000


def start_pump(read_fd: int, log_path: str, max_bytes: int, name: str) -> LogPump:
    """A pump from the pipe `read_fd` into the log at `log_path`; raises OSError if it cannot be opened."""
    return LogPump(read_fd, RotatingLog(log_path, max_bytes), name=name)


class LogBook:
    """Where each replica's log is, also for replicas the engine forgot (the newest MAX_REMEMBERED_LOGS)."""

    def __init__(self) -> None:
        self._paths: dict[str, str] = {}

    def remember(self, replica_id: str, log_path: str) -> None:
        self._paths.pop(replica_id, None)
        self._paths[replica_id] = log_path
        while len(self._paths) > MAX_REMEMBERED_LOGS:  # oldest first: dicts keep insertion order
            del self._paths[next(iter(self._paths))]

    def read(self, replica_id: str, max_bytes: int) -> str:
        """The last `max_bytes` of the replica's log (its rotated part too); KeyError if unknown."""
        log_path = self._paths.get(replica_id)
        if log_path is None:
            raise KeyError(f"unknown replica {replica_id!r}")
        return read_log_tail(log_path, max_bytes)
