"""Replica logs: a replica's stdout and stderr, timestamped line by line, in a bounded, rotated file.

Every line is prefixed with the UTC time it was captured, ISO 8601 with milliseconds, then one
space (`2026-11-22T04:12:03.123Z Replica iris-1-a1b2c3: loading ...`), so that the logs of
several replicas can be merged by time. A log grows to `max_bytes`, then moves to `<path>.1`
(replacing the previous backup) and a new file starts: at most about twice `max_bytes` per replica.

The local engine reads each replica's output from a pipe (`LogPump`), outside the replica: output
written just before a crash is not lost with the process, and the replica's hot path pays only a
write to a pipe. `capture_output_in_process` does the same inside the process, for a replica run
without an engine.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable

DEFAULT_MAX_BYTES = 5 * 1024 * 1024
MAX_BYTES_ENV = "RTSERVE_REPLICA_LOG_MAX_BYTES"
BACKUP_SUFFIX = ".1"
READ_CHUNK = 64 * 1024
# An unfinished line longer than this is written out in pieces, so memory stays bounded.
MAX_LINE_BYTES = 64 * 1024


def max_bytes_from_env(environ: dict[str, str] | None = None) -> int:
    """RTSERVE_REPLICA_LOG_MAX_BYTES, or 5 MiB; at least 1 KiB."""
    raw = (environ if environ is not None else os.environ).get(MAX_BYTES_ENV, "")
    if not raw.strip():
        return DEFAULT_MAX_BYTES
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{MAX_BYTES_ENV} must be a number of bytes, got {raw!r}") from None
    return max(1024, value)


def timestamp(now: float) -> bytes:
    """`2026-11-22T04:12:03.123Z `: the prefix of a line captured at `now` (epoch seconds)."""
    seconds = int(now)
    millis = int((now - seconds) * 1000)
    return (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z ").encode()


class RotatingLog:
    """Appends timestamped lines to `path`, moving it to `<path>.1` when it would pass `max_bytes`."""

    def __init__(self, path: str, max_bytes: int = DEFAULT_MAX_BYTES, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._clock = clock
        self._partial = b""
        os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._size = os.fstat(self._fd).st_size

    def feed(self, data: bytes) -> None:
        """Write the complete lines in `data` (and what came before it); keep an unfinished line for later."""
        if not data:
            return
        data = self._partial + data
        end = data.rfind(b"\n") + 1
        complete, rest = data[:end], data[end:]
        while len(rest) >= MAX_LINE_BYTES:  # an overlong unfinished line goes out in pieces, each a line
            complete += rest[:MAX_LINE_BYTES] + b"\n"
            rest = rest[MAX_LINE_BYTES:]
        self._partial = rest
        if complete:
            self._write_lines(complete)

    def flush_partial(self) -> None:
        """Write an unfinished last line (the writer is gone: it will not be finished)."""
        if self._partial:
            partial, self._partial = self._partial, b""
            self._write_lines(partial + b"\n")

    def close(self) -> None:
        self.flush_partial()
        with contextlib.suppress(OSError):
            os.close(self._fd)

    def _write_lines(self, lines: bytes) -> None:
        prefix = timestamp(self._clock())
        stamped = prefix + lines[:-1].replace(b"\n", b"\n" + prefix) + b"\n"
        # A burst read in one go may hold more than fits: write it in runs of whole lines, rotating
        # between runs, so that no file grows past max_bytes (unless one line alone is longer).
        start = 0
        while start < len(stamped):
            room = self.max_bytes - self._size
            end = stamped.rfind(b"\n", start, start + room) + 1 if room > 0 else 0
            if end <= start:  # not even one line fits
                if self._size:
                    self._rotate()
                    continue
                end = stamped.index(b"\n", start) + 1  # an empty file takes an overlong line whole
            self._append(stamped[start:end])
            start = end

    def _append(self, data: bytes) -> None:
        try:
            os.write(self._fd, data)
        except OSError:
            return  # a full disk must not take the replica down; its output is lost, not its requests
        self._size += len(data)

    def _rotate(self) -> None:
        os.close(self._fd)
        with contextlib.suppress(OSError):
            os.replace(self.path, self.path + BACKUP_SUFFIX)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._size = os.fstat(self._fd).st_size


class LogPump:
    """A daemon thread copying everything written to the pipe `read_fd` into a `RotatingLog`.

    It stops at end of file, which comes when every process holding the pipe's write end (the
    replica, and any child it started) has exited, and then closes `read_fd`.
    """

    def __init__(self, read_fd: int, log: RotatingLog, name: str = "replica-log") -> None:
        self._fd = read_fd
        self.log = log
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for end of file; True if the pump finished."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        try:
            while True:
                try:
                    data = os.read(self._fd, READ_CHUNK)
                except InterruptedError:
                    continue
                except OSError:
                    break
                if not data:
                    break
                self.log.feed(data)
        finally:
            self.log.close()
            with contextlib.suppress(OSError):
                os.close(self._fd)


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


def capture_output_in_process(log_path: str, max_bytes: int | None = None) -> InProcessCapture:
    """Send fds 1 and 2 through a pipe to a pump thread of this process that writes `log_path`."""
    log = RotatingLog(log_path, max_bytes if max_bytes is not None else max_bytes_from_env())
    read_fd, write_fd = os.pipe()
    pump = LogPump(read_fd, log)
    redirect_output(write_fd)
    os.close(write_fd)
    return InProcessCapture(pump)
