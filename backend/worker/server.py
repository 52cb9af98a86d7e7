"""The replica's side of the protocol: serve one loaded model on a Unix domain socket, or on TCP.

The event loop only moves frames; predictions run on a dedicated thread, one request (or one
batch) at a time, so health pings are answered while a long prediction runs, and concurrent
requests queue in arrival order. A queued request whose caller gave up (the "cancel" op) leaves the
queue unscored, so abandoned work does not delay the requests behind it.

A local replica listens on a Unix socket (`start`); the Ray engine's replica actor listens on a TCP
port of its node (`listen`), where every connection must first present the replica's secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import random
import signal
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from rtserve.server.worker import limits
from rtserve.server.worker.errors import error_result
from rtserve.server.worker.protocol import (
    OP_CANCEL,
    OP_ERROR,
    OP_HELLO,
    OP_INVOKE,
    OP_PING,
    OP_PONG,
    OP_RESULT,
    OP_WELCOME,
    ProtocolError,
    encode_frame,
    read_frame,
)
from rtserve.server.worker.rowwise import RowwiseScorer, is_row_wise
from rtserve.server.worker.scoring import score
from rtserve.server.worker.types import InvocationResult

logger = logging.getLogger(__name__)

# How long a TCP peer has to present the secret before its connection is closed.
HELLO_TIMEOUT = 10.0


def load_model(model_uri: str) -> Any:
    """Load a pyfunc model the way `mlflow models serve` does (honours SERVING_MODEL_CONFIG)."""
    from mlflow.environment_variables import _MLFLOW_IS_IN_SERVING_ENVIRONMENT
    from mlflow.pyfunc import scoring_server

    # Set before loading: some flavors behave differently (e.g. skip warnings) when serving.
    os.environ[_MLFLOW_IS_IN_SERVING_ENVIRONMENT.name] = "true"
    return scoring_server.load_model_with_mlflow_config(model_uri)


@dataclass(eq=False)
class _Request:
    writer: asyncio.StreamWriter
    request_id: Any
    body: bytes
    content_type: str | None
    deadline: float | None


class ReplicaServer:
    """Serves `model` on a Unix domain socket or a TCP port until `request_stop()`, then drains and returns.

    Draining answers what was received, for up to `drain_timeout` seconds (None: no limit); a
    prediction that outlasts it is abandoned, and `serve_until_stopped` says so (the caller then
    exits the process hard, since the scoring thread cannot be interrupted).

    Requests queue in arrival order; one scoring thread takes them from the queue. With
    `max_batch_size` > 1 and a row-wise model (see `backend.worker.rowwise`), it takes up to that
    many queued requests at once and predicts compatible ones in one call; when traffic is
    concurrent it first waits up to `max_batch_wait_ms` for the batch to fill.

    `max_input_columns` is the server's limit on input columns: wider requests (unless the model's
    signature names more) are refused before they are parsed (see `backend.worker.limits`).
    """

    def __init__(
        self,
        model: Any,
        clock: Callable[[], float] = time.monotonic,
        *,
        max_batch_size: int = 1,
        max_batch_wait_ms: float = 0.0,
        drain_timeout: float | None = None,
        max_input_columns: int = limits.DEFAULT_MAX_INPUT_COLUMNS,
    ) -> None:
        self._model = model
        self.drain_timeout = drain_timeout
        self.max_input_columns = max_input_columns
        self._input_schema = model.metadata.get_input_schema()
        self._clock = clock
        self._rowwise = (
            RowwiseScorer(model, self._input_schema, max_input_columns=max_input_columns)
            if is_row_wise(model)
            else None
        )
        self.max_batch_size = max(1, max_batch_size) if self._rowwise is not None else 1
        self._batch_wait = max(0.0, max_batch_wait_ms) / 1000.0
        # One thread: most models are not thread-safe, and the GIL would serialize them anyway.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="score")
        self._server: asyncio.AbstractServer | None = None
        self._socket_path: str | None = None
        self._secret: bytes | None = None  # what a TCP peer's hello must present
        self._connections: set[asyncio.StreamWriter] = set()
        self._connection_tasks: set[asyncio.Task[Any]] = set()
        self._queue: deque[_Request] = deque()
        self._arrived = asyncio.Event()
        self._in_flight = 0
        self._all_answered = asyncio.Event()
        self._scorer: asyncio.Task[None] | None = None
        # Requests that arrived while the previous batch was scored: a sign of concurrent callers.
        self._arrived_while_busy = 0
        self._stop = asyncio.Event()
        self._drain_changed = asyncio.Event()
        if max_batch_size > 1 and self._rowwise is None:
            logger.info("Batching is configured but this model is not row-wise; requests are scored one by one")

    @property
    def in_flight(self) -> int:
        """Requests received and not yet answered (running or queued)."""
        return self._in_flight

    @property
    def batching(self) -> bool:
        return self.max_batch_size > 1 and self._rowwise is not None and self._rowwise.batching

    async def start(self, socket_path: str) -> None:
        """Listen on `socket_path` (a stale socket file from a previous run is replaced)."""
        if os.path.exists(socket_path):
            os.unlink(socket_path)
        self._socket_path = socket_path
        self.start_scoring()
        self._server = await asyncio.start_unix_server(self._serve_connection, path=socket_path)

    async def listen(self, host: str, secret: str, ports: tuple[int, int] | None = None) -> int:
        """Listen on TCP at `host`, on a free port of `ports` (inclusive; None: any), and return the port.

        Every connection must open with a hello frame carrying `secret` (see `backend.worker.protocol`).
        Raises OSError if no port of the range is free.
        """
        self._secret = secret.encode()
        candidates = [0] if ports is None else list(range(ports[0], ports[1] + 1))
        random.shuffle(candidates)  # replicas starting at once on one node try different ports first
        error: OSError = OSError(f"no port to listen on in {ports}")
        for port in candidates:
            try:
                self._server = await asyncio.start_server(self._serve_connection, host, port)
            except OSError as exc:  # taken: try the next one
                error = exc
                continue
            self.start_scoring()
            return int(self._server.sockets[0].getsockname()[1])
        raise error

    def start_scoring(self) -> None:
        """Start taking requests from the queue. Called in the event loop."""
        if self._scorer is None:
            self._scorer = asyncio.create_task(self._score_queued(), name="replica-scorer")

    def request_stop(self, drain_timeout: float | None = None) -> None:
        """Stop accepting connections, finish what was received, then return from `serve_until_stopped`.

        `drain_timeout` shortens the drain (0: answer nothing more), e.g. when nobody is left to answer.
        """
        if drain_timeout is not None:
            self.drain_timeout = drain_timeout if self.drain_timeout is None else min(self.drain_timeout, drain_timeout)
            self._drain_changed.set()
        self._stop.set()

    async def serve_until_stopped(self) -> bool:
        """Wait for a stop, then drain; False if requests were still running at the drain deadline."""
        await self._stop.wait()
        return await self._drain()

    async def _drain(self) -> bool:
        if self._server is not None:
            self._server.close()
        logger.info("Stopping: %d request(s) in flight", self.in_flight)
        loop = asyncio.get_running_loop()
        started = loop.time()
        # Requests may still arrive on open connections while draining; they are answered too.
        while self._in_flight:
            self._all_answered.clear()
            self._drain_changed.clear()
            remaining = None if self.drain_timeout is None else started + self.drain_timeout - loop.time()
            if remaining is not None and remaining <= 0:
                return self._abandon()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await _first_set(self._all_answered, self._drain_changed)
        if self._scorer is not None:
            self._scorer.cancel()
            await asyncio.gather(self._scorer, return_exceptions=True)
        for writer in list(self._connections):
            writer.close()
        if self._connection_tasks:
            # Let each connection's reader see its end of file, rather than be cancelled by asyncio.run
            # (Python 3.11 logs a spurious error for a cancelled connection handler).
            await asyncio.wait(self._connection_tasks, timeout=1.0)
        self._executor.shutdown(wait=True)
        self._unlink_socket()
        logger.info("Stopped")
        return True

    def _abandon(self) -> bool:
        """Give up on what is still running at the drain deadline; the process must then exit hard."""
        logger.warning(
            "Drain deadline (%g s) passed with %d request(s) unanswered; abandoning them",
            self.drain_timeout,
            self._in_flight,
        )
        if self._scorer is not None:
            self._scorer.cancel()
        for writer in list(self._connections):
            writer.close()
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._unlink_socket()
        return False

    def _unlink_socket(self) -> None:
        if self._socket_path and os.path.exists(self._socket_path):
            os.unlink(self._socket_path)

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections.add(writer)
        task = asyncio.current_task()
        if task is not None:
            self._connection_tasks.add(task)
            task.add_done_callback(self._connection_tasks.discard)
        try:
            if self._secret is not None and not await self._welcome(reader, writer):
                return
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

    async def _welcome(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """True if the peer's first frame is a hello with the secret (then answered); else it is refused."""
        assert self._secret is not None
        peer = writer.get_extra_info("peername")
        try:
            async with asyncio.timeout(HELLO_TIMEOUT):
                header, _ = await read_frame(reader, max_body_bytes=0)
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError, ProtocolError) as exc:
            logger.warning("Refused a connection from %s: no hello (%s)", peer, type(exc).__name__)
            return False
        secret = header.get("secret")
        if header.get("op") != OP_HELLO or not isinstance(secret, str):
            logger.warning("Refused a connection from %s: its first frame is not a hello", peer)
            return False
        if not hmac.compare_digest(secret.encode(), self._secret):
            logger.warning("Refused a connection from %s: wrong secret", peer)
            return False
        writer.write(encode_frame({"op": OP_WELCOME, "id": header.get("id")}))
        return True

    def _dispatch(self, writer: asyncio.StreamWriter, header: dict[str, Any], body: bytes) -> None:
        op = header.get("op")
        if op == OP_PING:
            writer.write(encode_frame({"op": OP_PONG, "id": header.get("id"), "in_flight": self.in_flight}))
        elif op == OP_INVOKE:
            deadline = self._deadline(header.get("timeout"))
            self._queue.append(_Request(writer, header.get("id"), body, header.get("content_type"), deadline))
            self._in_flight += 1
            self._arrived.set()
        elif op == OP_CANCEL:
            self._cancel(writer, header.get("id"))
        else:
            writer.write(encode_frame({"op": OP_ERROR, "id": header.get("id"), "message": f"unknown op {op!r}"}))

    def _cancel(self, writer: asyncio.StreamWriter, request_id: Any) -> None:
        """Drop a request its caller gave up on, if it is still queued (one being scored just finishes).

        Nothing is answered: the caller stopped waiting. Only abandoned requests come here, so a
        linear search of the queue costs the normal path nothing.
        """
        for request in self._queue:
            if request.request_id == request_id and request.writer is writer:
                self._queue.remove(request)
                self._answered()
                return

    async def _score_queued(self) -> None:
        """Take requests from the queue (a batch at a time when batching) and score them on the thread."""
        loop = asyncio.get_running_loop()
        while True:
            while not self._queue:
                self._arrived.clear()
                await self._arrived.wait()
            batch = self._take(self.max_batch_size if self.batching else 1)
            if len(batch) < self.max_batch_size and self._batch_wait > 0 and self.batching:
                # Wait for company only with evidence of concurrent callers: a lone caller would
                # only be delayed, since nobody else can arrive while it waits for its answer.
                if len(batch) > 1 or self._arrived_while_busy:
                    await self._fill(batch, loop.time() + self._batch_wait)
            requests = [(request.body, request.content_type, request.deadline) for request in batch]
            try:
                results = await loop.run_in_executor(self._executor, self._score_batch, requests)
            except asyncio.CancelledError:
                raise
            except Exception:  # the executor is gone (interpreter exit): answer rather than leave callers hanging
                logger.exception("Could not score a batch")
                failed = error_result("TEMPORARILY_UNAVAILABLE", "The replica failed unexpectedly; retry.", 503)
                results = [failed] * len(batch)
            self._arrived_while_busy = len(self._queue)
            for request, result in zip(batch, results, strict=True):
                self._answer(request, result)

    def _take(self, limit: int) -> list[_Request]:
        batch: list[_Request] = []
        while self._queue and len(batch) < limit:
            batch.append(self._queue.popleft())
        return batch

    async def _fill(self, batch: list[_Request], until: float) -> None:
        loop = asyncio.get_running_loop()
        while len(batch) < self.max_batch_size:
            if not self._queue:
                remaining = until - loop.time()
                if remaining <= 0:
                    return
                self._arrived.clear()
                try:
                    async with asyncio.timeout(remaining):
                        await self._arrived.wait()
                except TimeoutError:
                    return
            batch.extend(self._take(self.max_batch_size - len(batch)))

    def _answered(self) -> None:
        self._in_flight -= 1
        if not self._in_flight:
            self._all_answered.set()

    def _answer(self, request: _Request, result: InvocationResult) -> None:
        self._answered()
        if request.writer.is_closing():
            return  # the gateway hung up; nobody is waiting for this answer
        status, content_type = result.status, result.content_type
        header = {"op": OP_RESULT, "id": request.request_id, "status": status, "content_type": content_type}
        # No drain: the gateway reads answers as they come, so the socket buffer does not fill up.
        request.writer.write(encode_frame(header, result.body))

    def _deadline(self, timeout: Any) -> float | None:
        if isinstance(timeout, int | float) and timeout > 0:
            return self._clock() + timeout
        return None

    def _score_batch(self, requests: list[tuple[bytes, str | None, float | None]]) -> list[InvocationResult]:
        """Runs on the scoring thread: an answer for every request, never an exception."""
        results: list[InvocationResult | None] = [None] * len(requests)
        try:
            now = self._clock() if any(deadline is not None for _, _, deadline in requests) else 0.0
            live = []
            for index, (_, _, deadline) in enumerate(requests):
                # A request that waited in the queue past its timeout has been given up by the gateway.
                if deadline is not None and now >= deadline:
                    results[index] = error_result(
                        "DEADLINE_EXCEEDED", "The request waited past its timeout before it was scored.", 504
                    )
                else:
                    live.append(index)
            # Before any parsing; the bodies it decoded to count their columns are handed on, not decoded again.
            remaining = limits.refuse_too_wide(requests, live, results, self._input_schema, self.max_input_columns)
            live = list(remaining)
            bodies = [(requests[index][0], requests[index][1]) for index in live]
            if self._rowwise is None:
                scored = [
                    score(body, content_type, self._model, self._input_schema, max_input_columns=self.max_input_columns)
                    for body, content_type in bodies
                ]
            elif len(bodies) == 1:
                scored = [self._rowwise.score_one(*bodies[0], remaining[live[0]])]
            else:
                scored = self._rowwise.score_many(bodies, list(remaining.values()))
            for index, result in zip(live, scored, strict=True):
                results[index] = result
        except BaseException:  # the scorers map every error themselves; this is the last line of defence
            logger.exception("Unexpected error while scoring")
        unavailable = error_result("TEMPORARILY_UNAVAILABLE", "The replica failed unexpectedly; retry.", 503)
        return [result if result is not None else unavailable for result in results]


async def serve(
    model: Any,
    socket_path: str,
    on_ready: Callable[[ReplicaServer], None] | None = None,
    stop_signals: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT),
    *,
    max_batch_size: int = 1,
    max_batch_wait_ms: float = 0.0,
    drain_timeout: float | None = None,
    max_input_columns: int = limits.DEFAULT_MAX_INPUT_COLUMNS,
) -> bool:
    """Serve `model` on `socket_path` until one of `stop_signals` arrives, then drain and return.

    Returns False if the drain deadline abandoned running predictions: the caller should exit with
    os._exit, since interpreter shutdown would wait for the scoring thread.
    """
    server = ReplicaServer(
        model,
        max_batch_size=max_batch_size,
        max_batch_wait_ms=max_batch_wait_ms,
        drain_timeout=drain_timeout,
        max_input_columns=max_input_columns,
    )
    await server.start(socket_path)
    loop = asyncio.get_running_loop()
    for stop_signal in stop_signals:
        loop.add_signal_handler(stop_signal, server.request_stop)
    if on_ready is not None:
        on_ready(server)
    return await server.serve_until_stopped()


async def _first_set(*events: asyncio.Event) -> None:
    """Return once any of `events` is set."""
    waits = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()
