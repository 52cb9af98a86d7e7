"""One backend per data dir: a second `rtserve server` on the same data dir is refused at start.

Two backends on one data dir would each reconcile the same state and start their own copy of every
replica, in the same model and log folders; and SQLite serves one instance anyway. Several instances
share state through PostgreSQL (`--database-url`), each with its own data dir.
The lock is an advisory `flock` on `<data-dir>/rtserve.lock`, held until the process exits; the
kernel drops it when the process dies, so a killed backend never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_FILE = "rtserve.lock"
_held: dict[Path, int] = {}  # data dir -> the descriptor holding its lock (one per process)


class DataDirInUse(RuntimeError):
    """Another backend process holds this data dir."""


def hold(data_dir: Path) -> bool:
    """Take the data dir for this process, or raise DataDirInUse naming the holder.

    True if this call took it; False if this process already held it (its taker releases it).
    """
    key = data_dir.resolve()
    if key in _held:
        return False
    path = key / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise DataDirInUse(
            f"Another rtserve backend (pid {holder}) is using the data dir {key}: one backend per data dir. "
            "Stop that backend, or start this one with another --data-dir. (Instances that share state use "
            "one PostgreSQL database, --database-url postgresql://..., each with its own data dir; SQLite "
            "serves one instance.)"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    _held[key] = fd
    return True


def release(data_dir: Path) -> None:
    """Give the data dir up (an app stopped in a process that goes on, such as a test's)."""
    fd = _held.pop(data_dir.resolve(), None)
    if fd is not None:
        os.close(fd)  # closing the only descriptor of the open file drops its flock
