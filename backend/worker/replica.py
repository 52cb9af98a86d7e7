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
from typing import NoReturn

from backend.engines.base import ReplicaSpec
from backend.worker.logs import InProcessCapture, capture_output_in_process, redirect_output

logger = logging.getLogger("rtserve.replica")

MAX_FAILURE_MESSAGE_CHARS = 4000


def run_replica(
    spec: ReplicaSpec, socket_path: str, status_conn: Connection, log_conn: Connection | None = None
) -> None:
    """Load `spec.model_uri`, serve it on `socket_path`, exit 0 after a graceful stop, 1 if loading failed.

    stdout and stderr go to `log_conn`, the write end of a pipe the engine reads into the replica's
    log; without one, a thread of this process writes `spec.log_path` itself (see `logs`).
    """
    capture = None
    try:
        if log_conn is not None:
            redirect_output(log_conn.fileno())
            log_conn.close()
        else:
            capture = capture_output_in_process(spec.log_path)
    except (OSError, ValueError) as exc:
        _send(status_conn, ("failed", f"cannot open the replica log {spec.log_path}: {exc}"))
        sys.exit(1)
    os.environ.update(spec.env)
    # The engine stops replicas with SIGTERM; a Ctrl-C in the backend's terminal must not kill them first.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # No time in the format: every line of the replica log is timestamped when it is captured.
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr, force=True)
    logger.info("Replica %s (pid %d): loading %s", spec.replica_id, os.getpid(), spec.model_uri)

    # Imported here, not at the top: the engine imports this module too, and needs no MLflow for it.
    from backend.worker.server import ReplicaServer, load_model, serve

    try:
        model = load_model(spec.model_uri)
    except BaseException as exc:
        traceback.print_exc()
        _send(status_conn, ("failed", _loader_message(exc)))
        _exit(1, capture)

    def on_ready(server: ReplicaServer) -> None:
        batching = f"batches of up to {server.max_batch_size}" if server.batching else "no batching"
        logger.info("Replica %s: serving on %s (%s)", spec.replica_id, socket_path, batching)
        _send(status_conn, ("ready",))
        _stop_when_parent_dies(status_conn, server.request_stop)

    asyncio.run(
        serve(
            model,
            socket_path,
            on_ready=on_ready,
            stop_signals=(signal.SIGTERM,),
            max_batch_size=spec.max_batch_size,
            max_batch_wait_ms=spec.max_batch_wait_ms,
        )
    )
    _exit(0, capture)


def _exit(code: int, capture: InProcessCapture | None) -> NoReturn:
    if capture is not None:
        capture.close()
    sys.exit(code)


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
