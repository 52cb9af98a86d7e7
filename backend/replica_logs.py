"""The replica log format: a replica's stdout and stderr, timestamped line by line, in a bounded, rotated file.

Every line is prefixed with the UTC time it was captured, ISO 8601 with milliseconds, then one
space (`2026-11-22T04:12:03.123Z Replica iris-1-a1b2c3: loading ...`), so that the logs of
several replicas can be merged by time. A log grows to `max_bytes`, then moves to `<path>.1`
(replacing the previous backup) and a new file starts: at most about twice `max_bytes` per replica.

One module for the writer (`RotatingLog`, fed by a `LogPump` thread from a pipe) and the reader
(`read_log_tail`), imported by the local engine (which pumps each replica's output outside the
replica), by a replica run without an engine (`backend.worker.logs`), and by the log routes
(`backend.control.logs`). It imports nothing of rtserve, so any of them may use it.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable

DEFAULT_MAX_BYTES = 5 * 1024 * 1024
BACKUP_SUFFIX = ".1"
READ_CHUNK = 64 * 1024
# An unfinished line longer than this is written out in pieces, so memory stays bounded.
MAX_LINE_BYTES = 64 * 1024


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

    def append_stamped(self, lines: bytes) -> None:
        """Write lines that carry their timestamps already (copied from another replica log), rotating as usual.

        `lines` must end with a newline; a copy of a log written elsewhere (the Ray engine's mirror of
        an actor's log) keeps the times the lines were captured there.
        """
        if lines:
            self._write_stamped(lines if lines.endswith(b"\n") else lines + b"\n")

    def _write_lines(self, lines: bytes) -> None:
        prefix = timestamp(self._clock())
        self._write_stamped(prefix + lines[:-1].replace(b"\n", b"\n" + prefix) + b"\n")

    def _write_stamped(self, stamped: bytes) -> None:
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


def read_log_tail(path: str | os.PathLike[str], max_bytes: int) -> str:
    """The last `max_bytes` of a replica log, reaching into its rotated part (`<path>.1`) when the log
    holds less, starting at a line boundary; empty if there is no log."""
    path = os.fspath(path)
    tail, truncated = _tail(path, max_bytes)
    if not truncated and len(tail) < max_bytes:
        older, older_truncated = _tail(path + BACKUP_SUFFIX, max_bytes - len(tail))
        tail, truncated = older + tail, older_truncated
    if truncated:
        tail = tail.split(b"\n", 1)[-1]  # drop the partial first line
    return tail.decode("utf-8", errors="replace")


def _tail(path: str, max_bytes: int) -> tuple[bytes, bool]:
    """The last `max_bytes` of the file (empty if it is missing), and whether anything came before them."""
    try:
        with open(path, "rb") as log:
            size = log.seek(0, os.SEEK_END)
            log.seek(max(0, size - max_bytes))
            return log.read(max_bytes), size > max_bytes
    except FileNotFoundError:
        return b"", False
