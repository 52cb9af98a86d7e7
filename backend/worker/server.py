"""The replica's side of the protocol: serve one loaded model on a Unix domain socket.

The event loop only moves frames; predictions run one at a time on a dedicated thread, so health
pings are answered while a long prediction runs, and concurrent requests queue in arrival order.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from backend.engines.base import InvocationResult
from backend.worker.errors import error_result
from backend.worker.protocol import (
    OP_ERROR,
    OP_INVOKE,
    OP_PING,
    OP_PONG,
    OP_RESULT,
    ProtocolError,
    encode_frame,
    read_frame,
)
from backend.worker.scoring import score

logger = logging.getLogger(__name__)


def load_model(model_uri: str) -> Any:
    """Load a pyfunc model the way `mlflow models serve` does (honours SERVING_MODEL_CONFIG)."""
    from mlflow.environment_variables import _MLFLOW_IS_IN_SERVING_ENVIRONMENT
    from mlflow.pyfunc import scoring_server

    # Set before loading: some flavors behave differently (e.g. skip warnings) when serving.
    os.environ[_MLFLOW_IS_IN_SERVING_ENVIRONMENT.name] = "true"
    return scoring_server.load_model_with_mlflow_config(model_uri)


class ReplicaServer:
    """Serves `model` on a Unix domain socket until `request_stop()`, then drains and returns."""

    def __init__(self, model: Any, clock: Callable[[], float] = time.monotonic) -> None:
        self._model = model
        self._input_schema = model.metadata.get_input_schema()
        self._clock = clock
        # One thread: most models are not thread-safe, and the GIL would serialize them anyway.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="score")
        self._server: asyncio.AbstractServer | None = None
        self._socket_path: str | None = None
        self._connections: set[asyncio.StreamWriter] = set()
        self._requests: set[asyncio.Task[None]] = set()
        self._stop = asyncio.Event()

    @property
    def in_flight(self) -> int:
        """Requests received and not yet answered (running or queued)."""
        return len(self._requests)

    async def start(self, socket_path: str) -> None:
        """Listen on `socket_path` (a stale socket file from a previous run is replaced)."""
        if os.path.exists(socket_path):
            os.unlink(socket_path)
        self._socket_path = socket_path
        self._server = await asyncio.start_unix_server(self._serve_connection, path=socket_path)

    def request_stop(self) -> None:
        """Stop accepting connections, finish what was received, then return from `serve_until_stopped`."""
        self._stop.set()

    async def serve_until_stopped(self) -> None:
        await self._stop.wait()
        await self._drain()

    async def _drain(self) -> None:
        if self._server is not None:
            self._server.close()
        logger.info("Stopping: %d request(s) in flight", self.in_flight)
        # Requests may still arrive on open connections while draining; they are answered too.
        while self._requests:
            await asyncio.gather(*self._requests, return_exceptions=True)
        for writer in list(self._connections):
            writer.close()
        self._executor.shutdown(wait=True)
        if self._socket_path and os.path.exists(self._socket_path):
            os.unlink(self._socket_path)
        logger.info("Stopped")

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections.add(writer)
        try:
            while True:
                try:
                    header, body = await read_frame(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                except ProtocolError as exc:
                    logger.error("Closing a connection that sent an invalid frame: %s", exc)
                    return
                self._dispatch(writer, header, body)
        finally:
            self._connections.discard(writer)
            writer.close()

    def _dispatch(self, writer: asyncio.StreamWriter, header: dict[str, Any], body: bytes) -> None:
        op = header.get("op")
        if op == OP_PING:
            writer.write(encode_frame({"op": OP_PONG, "id": header.get("id"), "in_flight": self.in_flight}))
        elif op == OP_INVOKE:
            task = asyncio.create_task(self._invoke(writer, header, body))
            self._requests.add(task)
            task.add_done_callback(self._requests.discard)
        else:
            writer.write(encode_frame({"op": OP_ERROR, "id": header.get("id"), "message": f"unknown op {op!r}"}))

    async def _invoke(self, writer: asyncio.StreamWriter, header: dict[str, Any], body: bytes) -> None:
        deadline = self._deadline(header.get("timeout"))
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(self._executor, self._score, body, header.get("content_type"), deadline)
        if writer.is_closing():
            return  # the gateway hung up; nobody is waiting for this answer
        answer = {"op": OP_RESULT, "id": header.get("id"), "status": result.status, "content_type": result.content_type}
        writer.write(encode_frame(answer, result.body))
        try:
            await writer.drain()
        except ConnectionError:
            pass

    def _deadline(self, timeout: Any) -> float | None:
        if isinstance(timeout, int | float) and timeout > 0:
            return self._clock() + timeout
        return None

    def _score(self, body: bytes, content_type: str | None, deadline: float | None) -> InvocationResult:
        # A request that waited in the queue past its timeout has been given up by the gateway.
        if deadline is not None and self._clock() >= deadline:
            return error_result("DEADLINE_EXCEEDED", "The request waited past its timeout before it was scored.", 504)
        try:
            return score(body, content_type, self._model, self._input_schema)
        except BaseException:  # score() maps every error itself; this is the last line of defence
            logger.exception("Unexpected error while scoring")
            return error_result("TEMPORARILY_UNAVAILABLE", "The replica failed unexpectedly; retry.", 503)


async def serve(
    model: Any,
    socket_path: str,
    on_ready: Callable[[ReplicaServer], None] | None = None,
    stop_signals: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT),
) -> None:
    """Serve `model` on `socket_path` until one of `stop_signals` arrives, then drain and return."""
    server = ReplicaServer(model)
    await server.start(socket_path)
    loop = asyncio.get_running_loop()
    for stop_signal in stop_signals:
        loop.add_signal_handler(stop_signal, server.request_stop)
    if on_ready is not None:
        on_ready(server)
    await server.serve_until_stopped()
