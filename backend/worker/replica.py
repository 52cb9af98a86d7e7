"""The entry point of a replica process started by the local engine.

`run_replica` runs in a child forked from the engine's pre-loaded fork server. It reports back on
`status_conn` (one end of a multiprocessing Pipe) exactly once: ("ready",) when the socket listens,
or ("failed", message) when the model could not be loaded. Afterwards the pipe only tells the
replica that its parent died (end of file), which stops it like SIGTERM does.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection

from backend.engines.base import ReplicaSpec

logger = logging.getLogger("rtserve.replica")

MAX_FAILURE_MESSAGE_CHARS = 4000


def run_replica(spec: ReplicaSpec, socket_path: str, status_conn: Connection) -> None:
    """Load `spec.model_uri`, serve it on `socket_path`, exit 0 after a graceful stop, 1 if loading failed."""
    try:
        _redirect_output(spec.log_path)
    except OSError as exc:
        _send(status_conn, ("failed", f"cannot open the replica log {spec.log_path}: {exc}"))
        sys.exit(1)
    os.environ.update(spec.env)
    # The engine stops replicas with SIGTERM; a Ctrl-C in the backend's terminal must not kill them first.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr, force=True
    )
    logger.info("Replica %s (pid %d): loading %s", spec.replica_id, os.getpid(), spec.model_uri)

    # Imported here, not at the top: the engine imports this module too, and needs no MLflow for it.
    from backend.worker.server import ReplicaServer, load_model, serve

    try:
        model = load_model(spec.model_uri)
    except BaseException as exc:
        traceback.print_exc()
        _send(status_conn, ("failed", _loader_message(exc)))
        sys.exit(1)

    def on_ready(server: ReplicaServer) -> None:
        logger.info("Replica %s: serving on %s", spec.replica_id, socket_path)
        _send(status_conn, ("ready",))
        _stop_when_parent_dies(status_conn, server.request_stop)

    asyncio.run(serve(model, socket_path, on_ready=on_ready, stop_signals=(signal.SIGTERM,)))
    sys.exit(0)


def _redirect_output(log_path: str) -> None:
    """Point fds 1 and 2 at the log (appending), so native libraries' output lands there too."""
    os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    for name, fd in (("stdout", 1), ("stderr", 2)):
        stream = getattr(sys, name)
        if stream is None or not hasattr(stream, "reconfigure"):
            # The engine's own process may have run without these (a service manager, pythonw).
            setattr(sys, name, open(fd, "w", buffering=1, closefd=False))
        else:
            stream.reconfigure(line_buffering=True)


def _loader_message(exc: BaseException) -> str:
    text = str(exc).strip()
    message = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    if len(message) > MAX_FAILURE_MESSAGE_CHARS:
        message = message[:MAX_FAILURE_MESSAGE_CHARS] + " ... (truncated; see the replica log)"
    return message


def _send(status_conn: Connection, message: tuple[str, ...]) -> None:
    try:
        status_conn.send(message)
    except OSError:
        logger.warning("The engine is gone; could not report %s", message[0])


def _stop_when_parent_dies(status_conn: Connection, stop: Callable[[], None]) -> None:
    loop = asyncio.get_running_loop()

    def on_readable() -> None:
        try:
            status_conn.recv()  # the engine sends nothing; anything readable means end of file
            return
        except (EOFError, OSError):
            pass
        logger.warning("The engine that started this replica is gone; stopping")
        loop.remove_reader(status_conn.fileno())
        stop()

    loop.add_reader(status_conn.fileno(), on_readable)
