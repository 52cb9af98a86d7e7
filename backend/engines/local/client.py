"""The engine's side of the framed protocol (`backend.worker.protocol`): one client per replica.

The engine keeps one persistent connection to each READY replica and multiplexes every request to
it over that connection; answers are matched to their request by id. Both engines use it: the local
engine over a replica's Unix socket, the Ray engine over TCP to the replica actor's port on its node
(with the replica's secret in the first frame).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import Any

from rtserve.server.engines.base import InvocationResult, ReplicaLost, ReplicaUnreachable
from rtserve.server.worker.errors import error_result
from rtserve.server.worker.protocol import (
    OP_CANCEL,
    OP_ERROR,
    OP_HELLO,
    OP_INVOKE,
    OP_PING,
    OP_PONG,
    OP_WELCOME,
    ProtocolError,
    encode_frame,
    read_frame,
)

logger = logging.getLogger(__name__)

# Requests are written without waiting, unless this much is still unsent (flow control).
DRAIN_ABOVE_BYTES = 256 * 1024


class WorkerClient:
    """An asyncio client for one replica: one connection, many concurrent requests.

    `address` is a Unix socket's path, or (host, port) over TCP, where the connection opens with
    `secret` (a hello frame) and `connect` fails unless the replica welcomes it.

    Safe for concurrent use by many tasks of one event loop. When the connection drops, every
    pending request fails with ReplicaLost (it was sent and may have run), and every later one with
    ReplicaUnreachable (it was not sent); both are ConnectionErrors.
    """

    def __init__(self, address: str | tuple[str, int], secret: str | None = None) -> None:
        self.address = address
        self.secret = secret
        self._name = address if isinstance(address, str) else f"{address[0]}:{address[1]}"
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._read_task: asyncio.Task[None] | None = None
        self._pending: dict[int, asyncio.Future[tuple[dict[str, Any], bytes]]] = {}
        self._ids = itertools.count(1)
        self._lost: ConnectionError | None = None
        self._closed = asyncio.Event()

    async def connect(self, timeout: float = 10.0) -> None:
        """Open the connection; raises ConnectionError if nobody listens there, or (TCP) it refuses the secret."""
        try:
            async with asyncio.timeout(timeout):
                if isinstance(self.address, str):
                    self._reader, self._writer = await asyncio.open_unix_connection(self.address)
                else:
                    self._reader, self._writer = await asyncio.open_connection(*self.address)
                    await self._hello(self._reader, self._writer)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ProtocolError) as exc:
            # FileNotFoundError when the socket file is missing; end of stream when the secret is refused
            if self._writer is not None:
                self._writer.close()
            self._writer = None
            reason = "the replica refused the connection" if isinstance(exc, asyncio.IncompleteReadError) else exc
            raise ConnectionError(f"cannot connect to {self._name}: {reason or type(exc).__name__}") from exc
        self._read_task = asyncio.create_task(self._read_answers(), name=f"worker-client:{self._name}")

    async def _hello(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Present the secret (before any request, so no request ever waits behind the hello)."""
        writer.write(encode_frame({"op": OP_HELLO, "id": 0, "secret": self.secret or ""}))
        header, _ = await read_frame(reader, max_body_bytes=0)
        if header.get("op") != OP_WELCOME:
            raise ProtocolError(f"the replica answered the hello with {header.get('op')!r}")

    @property
    def connected(self) -> bool:
        return self._writer is not None and not self._closed.is_set()

    async def wait_closed(self) -> None:
        """Return once the connection is gone (peer died, or close() was called)."""
        await self._closed.wait()

    async def invoke(self, body: bytes, content_type: str, timeout: float) -> InvocationResult:
        """Score `body` on the replica; raises TimeoutError past `timeout` s, ConnectionError if it died.

        Cancelled or timed out, it withdraws the request, so that the replica does not score it for
        nobody if it is still queued.
        """
        header, answer = await self._request(
            {"op": OP_INVOKE, "content_type": content_type, "timeout": timeout}, body, timeout, withdraw=True
        )
        if header.get("op") == OP_ERROR:
            # Only a replica of an incompatible version would do this; the caller sees a 503.
            message = f"The replica could not handle the request: {header.get('message')}"
            return error_result("TEMPORARILY_UNAVAILABLE", message, status=503)
        return InvocationResult(
            status=int(header["status"]), body=answer, content_type=header.get("content_type", "application/json")
        )

    async def ping(self, timeout: float) -> bool:
        """True if the replica answered within `timeout` seconds."""
        try:
            header, _ = await self._request({"op": OP_PING}, b"", timeout)
        except (TimeoutError, ConnectionError, ProtocolError):
            return False
        return header.get("op") == OP_PONG

    async def close(self) -> None:
        """Close the connection; pending requests fail with ReplicaLost."""
        self._fail_pending(ReplicaLost("the client was closed"))
        if self._read_task is not None:
            self._read_task.cancel()
            await asyncio.gather(self._read_task, return_exceptions=True)
        if self._writer is not None:
            self._writer.close()
            try:
                await self._writer.wait_closed()
            except (ConnectionError, OSError):
                pass

    async def _request(
        self, header: dict[str, Any], body: bytes, timeout: float, withdraw: bool = False
    ) -> tuple[dict[str, Any], bytes]:
        """Send one request and wait for its answer; with `withdraw`, a caller that gives up cancels it."""
        writer = self._writer
        if self._lost is not None:
            raise ReplicaUnreachable(str(self._lost))
        if writer is None:
            raise ReplicaUnreachable("not connected; call connect() first")
        if writer.is_closing():  # a write now would be dropped silently: the request would never arrive
            raise ReplicaUnreachable("the connection to the replica is closing")
        request_id = next(self._ids)
        answer = asyncio.get_running_loop().create_future()
        self._pending[request_id] = answer
        try:
            async with asyncio.timeout(timeout):
                try:
                    writer.write(encode_frame({**header, "id": request_id}, body))
                except (OSError, RuntimeError) as exc:
                    raise ReplicaUnreachable(f"could not send the request: {exc}") from exc
                if writer.transport.get_write_buffer_size() > DRAIN_ABOVE_BYTES:
                    await writer.drain()  # the replica reads slower than we write: wait for it
                return await answer
        except TimeoutError:
            if withdraw:
                self._withdraw(request_id, answer)
            raise TimeoutError(f"the replica did not answer within {timeout:g} s") from None
        except asyncio.CancelledError:
            if withdraw:
                self._withdraw(request_id, answer)
            raise
        except ConnectionError as exc:
            if isinstance(exc, ReplicaUnreachable | ReplicaLost):
                raise
            raise ReplicaLost(str(exc)) from exc  # drain() failed: part of it may have been sent
        finally:
            # A late answer to a request nobody waits for any more is dropped by the reader.
            self._pending.pop(request_id, None)

    def _withdraw(self, request_id: int, answer: asyncio.Future[tuple[dict[str, Any], bytes]]) -> None:
        """Tell the replica nobody waits for `request_id` any more (unless it answered or is gone)."""
        answered = answer.done() and not answer.cancelled()  # giving up cancelled the future itself
        if answered or not self.connected or self._writer is None or self._writer.is_closing():
            return
        try:
            self._writer.write(encode_frame({"op": OP_CANCEL, "id": request_id}))
        except (OSError, RuntimeError):
            pass  # the connection is going away; the replica's scoring goes with it

    async def _read_answers(self) -> None:
        assert self._reader is not None
        try:
            while True:
                header, body = await read_frame(self._reader)
                answer = self._pending.get(header.get("id"))  # type: ignore[arg-type]
                if answer is not None and not answer.done():
                    answer.set_result((header, body))
        except asyncio.CancelledError:
            raise
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            self._fail_pending(ReplicaLost("the replica closed the connection"))
        except ProtocolError as exc:
            logger.error("Dropping the connection to %s: %s", self._name, exc)
            self._fail_pending(ReplicaLost(f"protocol error: {exc}"))
            if self._writer is not None:
                self._writer.close()
        finally:
            self._closed.set()

    def _fail_pending(self, error: ConnectionError) -> None:
        """Fail every request sent and not answered: they reached the replica, or may have (ReplicaLost)."""
        if self._lost is None:
            self._lost = error
        self._closed.set()
        pending, self._pending = self._pending, {}
        for answer in pending.values():
            if not answer.done():
                answer.set_exception(ReplicaLost(str(error)))
