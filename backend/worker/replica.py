"""The entry point of a replica process started by the local engine.

`run_replica` runs in a child forked from the engine's pre-loaded fork server. It reports back on
`status_conn` (one end of a multiprocessing Pipe) exactly once: ("ready",) when the socket listens,
or ("failed", message) when the model could not be loaded.

The pipe also tells the replica that its engine died (end of file): a thread watches for it from the
replica's first moment, loading included, because nothing else would (a replica is a child of the
fork server, not of the engine, and a killed engine sends no SIGTERM). With the engine gone nobody
can receive an answer, so the replica exits at once, abandoning running predictions. A graceful
stop (SIGTERM) drains for at most `drain_timeout` seconds, then exits even with requests running.

Its settings come from the engine as arguments (`drain_timeout`, `max_input_columns`,
`log_max_bytes`); a replica reads no setting from its environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, NoReturn

from rtserve.server.replica_logs import DEFAULT_MAX_BYTES
from rtserve.server.worker.credentials import drop_credentials
from rtserve.server.worker.limits import DEFAULT_MAX_INPUT_COLUMNS
from rtserve.server.worker.logs import InProcessCapture, capture_output_in_process, redirect_output
from rtserve.server.worker.types import ReplicaSpec

if TYPE_CHECKING:
    from rtserve.server.worker.server import ReplicaServer

logger = logging.getLogger("rtserve.replica")

MAX_FAILURE_MESSAGE_CHARS = 4000
# How long a graceful stop waits for requests in flight when the engine does not say.
DEFAULT_DRAIN_TIMEOUT = 10.0
# The engine names itself here (its pid) while it starts the fork server, which then arranges to die
# with it (see `backend.worker.preload`).
FORKSERVER_ENGINE_PID_ENV = "RTSERVE_FORKSERVER_ENGINE_PID"
# With the engine gone, the stop is asked of the event loop; if it does not end the process in this
# long (the loop is stuck), the watcher thread exits the process itself.
ORPHANED_EXIT_GRACE = 2.0


def run_replica(
    spec: ReplicaSpec,
    socket_path: str,
    status_conn: Connection,
    log_conn: Connection | None = None,
    drain_timeout: float | None = DEFAULT_DRAIN_TIMEOUT,
    *,
    max_input_columns: int = DEFAULT_MAX_INPUT_COLUMNS,
    log_max_bytes: int = DEFAULT_MAX_BYTES,
) -> None:
    """Load `spec.model_uri`, serve it on `socket_path`, exit 0 after a graceful stop, 1 if loading failed.

    stdout and stderr go to `log_conn`, the write end of a pipe the engine reads into the replica's
    log; without one, a thread of this process writes `spec.log_path` itself, rotating it at
    `log_max_bytes` (see `logs`). A stop drains for up to `drain_timeout` seconds (None: until every
    request is answered). Requests with more than `max_input_columns` input columns (unless the
    model's signature names more) are refused before they are parsed (see `limits`).
    """
    watch = EngineWatch(status_conn)
    capture = None
    try:
        if log_conn is not None:
            redirect_output(log_conn.fileno())
            log_conn.close()
        else:
            capture = capture_output_in_process(spec.log_path, log_max_bytes)
    except (OSError, ValueError) as exc:
        _send(status_conn, ("failed", f"cannot open the replica log {spec.log_path}: {exc}"))
        sys.exit(1)
    drop_credentials()  # a no-op when forked (the fork server dropped them); a fresh interpreter inherited them
    os.environ.update(spec.env)
    # The engine stops replicas with SIGTERM; a Ctrl-C in the backend's terminal must not kill them first.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # No time in the format: every line of the replica log is timestamped when it is captured.
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr, force=True)
    logger.info("Replica %s (pid %d): loading %s", spec.replica_id, os.getpid(), spec.model_uri)

    # Imported here, not at the top: the engine imports this module too, and needs no MLflow for it.
    from rtserve.server.worker.server import load_model, serve

    try:
        model = load_model(spec.model_uri)
    except BaseException as exc:
        traceback.print_exc()
        _send(status_conn, ("failed", _loader_message(exc)))
        _exit(1, capture)

    def on_ready(server: ReplicaServer) -> None:
        batching = f"batches of up to {server.max_batch_size}" if server.batching else "no batching"
        logger.info("Replica %s: serving on %s (%s)", spec.replica_id, socket_path, batching)
        watch.stop_when_gone(asyncio.get_running_loop(), server)
        _send(status_conn, ("ready",))

    drained = asyncio.run(
        serve(
            model,
            socket_path,
            on_ready=on_ready,
            stop_signals=(signal.SIGTERM,),
            max_batch_size=spec.max_batch_size,
            max_batch_wait_ms=spec.max_batch_wait_ms,
            drain_timeout=drain_timeout,
            max_input_columns=max_input_columns,
        )
    )
    # A prediction abandoned at the drain deadline still runs on the scoring thread, which
    # interpreter shutdown would wait for: leave without it.
    _exit(0, capture, hard=not drained)


class EngineWatch:
    """Ends the replica when the engine that started it is gone (end of file on the status pipe).

    Runs on a daemon thread from the replica's first moment, so that a replica still loading its
    model (the main thread busy for minutes, perhaps) exits too. Once serving, it asks the server
    for an immediate stop (`stop_when_gone`), with a hard exit as the fallback.
    """

    def __init__(self, status_conn: Connection) -> None:
        self._status_conn = status_conn
        self._stop: Callable[[], object] | None = None
        self._lock = threading.Lock()
        threading.Thread(target=self._run, name="engine-watch", daemon=True).start()

    def stop_when_gone(self, loop: asyncio.AbstractEventLoop, server: ReplicaServer) -> None:
        """From now on, stop `server` (no drain: nobody is left to answer) rather than exit at once."""
        with self._lock:
            self._stop = lambda: loop.call_soon_threadsafe(server.request_stop, 0.0)

    def _run(self) -> None:
        while True:
            try:
                self._status_conn.recv()  # the engine sends nothing; only end of file matters
            except (EOFError, OSError):
                break
        logger.warning("The engine that started this replica is gone; stopping")
        with self._lock:
            stop = self._stop
        if stop is not None:
            with contextlib.suppress(RuntimeError):  # the event loop is closed: the process is on its way out
                stop()
            time.sleep(ORPHANED_EXIT_GRACE)
            logger.warning("Did not stop within %g s; exiting", ORPHANED_EXIT_GRACE)
        _flush_output()
        os._exit(0)


def _exit(code: int, capture: InProcessCapture | None, hard: bool = False) -> NoReturn:
    if capture is not None:
        capture.close()
    if hard:
        _flush_output()
        os._exit(code)
    sys.exit(code)


def _flush_output() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # the engine's end of the log pipe is gone, or the stream closed
            pass


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
