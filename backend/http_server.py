"""The backend's HTTP/1.1 protocol: uvicorn's httptools protocol with connection limits and JSON errors.

uvicorn alone keeps a connection open for as long as the client likes while it sends nothing, or only
part of a request head, and it answers what it rejects itself in plain text. This subclass, given to
uvicorn as `http=`:

- closes a connection whose request head (request line and headers) is not complete within
  `header_timeout` seconds of connecting, or of the first byte of the next request on a keep-alive
  connection: silently if nothing of a request arrived, with 408 if part of one did;
- answers a request head larger than MAX_HEAD_BYTES with 431 and closes the connection (httptools
  itself would buffer headers without bound);
- answers a connection past `max_connections` open ones with 503 and closes it;
- writes its own 400 (bytes that are not HTTP/1.1) and 500 (an exception that escapes the app) as the
  Databricks error envelope, like every other error of the service.

The header deadline is lazy: a request only stores when its head is due, and one timer per connection,
armed when none is pending, checks it; a keep-alive connection busy with requests re-arms it once per
timeout period, not per request. Added cost: about 0.3 us a request; otherwise it is uvicorn's code.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import types
import uuid
from collections.abc import Callable
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState

from rtserve.server.errors import envelope

log = logging.getLogger("rtserve")

# The largest request line plus headers accepted (nginx's default allows 32 KB).
MAX_HEAD_BYTES = 64 * 1024
# How long a connection refused past the cap may linger, reading and discarding, before it is closed.
REJECTED_LINGER_SECONDS = 1.0
REFUSAL_LOG_INTERVAL_SECONDS = 10.0


def _error_bytes(status: int, error_code: str, message: str, default_headers: list[tuple[bytes, bytes]]) -> bytes:
    """A complete `connection: close` response carrying the error envelope (its request id also a header)."""
    request_id = uuid.uuid4().hex
    body = json.dumps(envelope(error_code, message, request_id)).encode()
    content = [STATUS_LINE[status]]
    for name, value in default_headers:
        content.extend([name, b": ", value, b"\r\n"])
    content.extend(
        [
            b"content-type: application/json\r\n",
            b"x-request-id: " + request_id.encode("ascii") + b"\r\n",
            b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
            b"connection: close\r\n",
            b"\r\n",
            body,
        ]
    )
    return b"".join(content)


class JsonErrorCycle(RequestResponseCycle):
    """uvicorn's request/response cycle, with its last-resort 500 as the error envelope."""

    async def send_500_response(self) -> None:
        # The id the outermost middleware gave the request, if it got that far (it is in the log line).
        request_id = self.scope.get("state", {}).get("request_id")
        if not isinstance(request_id, str):
            request_id = uuid.uuid4().hex
        message = f"Unexpected error in the backend (request id {request_id})."
        body = json.dumps(envelope("INTERNAL_ERROR", message, request_id)).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"x-request-id", request_id.encode("ascii")),
            (b"content-length", str(len(body)).encode("ascii")),
            (b"connection", b"close"),
        ]
        await self.send({"type": "http.response.start", "status": 500, "headers": headers})
        await self.send({"type": "http.response.body", "body": body, "more_body": False})


def _creating_json_error_cycles(method: Callable[..., None]) -> Callable[..., None]:
    """uvicorn's `method`, unchanged, except that the cycles it creates are JsonErrorCycles.

    on_headers_complete creates the RequestResponseCycle itself; the same code run with that one name
    rebound keeps uvicorn's logic without a copy of it, and costs nothing per request (swapping the
    cycle's class afterwards would deoptimise every attribute access on it: about 10 us a request).
    """
    if "RequestResponseCycle" not in method.__code__.co_names:  # pragma: no cover - a future uvicorn
        log.warning("uvicorn's %s no longer creates its cycle; its own 500 stays plain text.", method.__qualname__)
        return method
    namespace = {**method.__globals__, "RequestResponseCycle": JsonErrorCycle}
    return types.FunctionType(method.__code__, namespace, method.__name__, method.__defaults__, method.__closure__)


_on_headers_complete = _creating_json_error_cycles(HttpToolsProtocol.on_headers_complete)
_on_message_begin = HttpToolsProtocol.on_message_begin


class _DiscardingParser:
    """Stands in for the HTTP parser of a refused connection: what it sends is read and dropped."""

    def feed_data(self, data: bytes) -> None:
        pass


class RtserveHttpProtocol(HttpToolsProtocol):
    """See the module docstring. Configure with `protocol_class()`, which sets the two class attributes."""

    header_timeout: float = 5.0
    max_connections: int = 1000
    _last_refusal_log: float = float("-inf")

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_deadline: float | None = None  # loop time the pending request head is due by, if one is
        self._head_started = False  # a byte of the pending request head has arrived
        self._head_bytes = 0  # of the pending request head, against MAX_HEAD_BYTES
        self._head_too_large = False

    # Connection cap and the first request head's deadline.
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            self._reject()
            return
        self._head_deadline = deadline = self.loop.time() + self.header_timeout
        self._head_timer = self.loop.call_at(deadline, self._head_timed_out)

    def _reject(self) -> None:
        self.parser = _DiscardingParser()  # type: ignore[assignment]
        now = self.loop.time()
        if now - RtserveHttpProtocol._last_refusal_log >= REFUSAL_LOG_INTERVAL_SECONDS:  # a flood logs once
            RtserveHttpProtocol._last_refusal_log = now
            log.warning("Refusing connections: %d are open, the limit (RTSERVE_MAX_CONNECTIONS).", self.max_connections)
        message = f"The server has {self.max_connections} open connections, its limit; retry shortly."
        transport = self.transport
        transport.write(_error_bytes(503, "TEMPORARILY_UNAVAILABLE", message, self.server_state.default_headers))
        # Half-close, and keep reading (into _DiscardingParser): the client reads the 503 and an EOF.
        # Closing outright with its request still unread would reset the connection, and the client
        # would see the reset instead of the 503.
        if transport.can_write_eof():
            transport.write_eof()
            self._head_timer = self.loop.call_later(REJECTED_LINGER_SECONDS, transport.close)
        else:  # pragma: no cover - TLS transports cannot half-close
            transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)

    # Request head deadline, per request.
    def on_message_begin(self) -> None:
        _on_message_begin(self)
        self._head_started = True
        if self._head_deadline is None:  # else the first request, on connection_made's deadline
            self._head_deadline = self.loop.time() + self.header_timeout
        if self._head_timer is None:
            self._head_timer = self.loop.call_at(self._head_deadline, self._head_timed_out)

    def on_url(self, url: bytes) -> None:
        self._count_head_bytes(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_head_bytes(len(name) + len(value))
        super().on_header(name, value)

    def _count_head_bytes(self, count: int) -> None:
        self._head_bytes += count
        if self._head_bytes > MAX_HEAD_BYTES:
            self._head_too_large = True
            raise ValueError("request head too large")  # httptools stops parsing; see send_400_response

    def on_headers_complete(self) -> None:
        self._head_bytes = 0
        self._head_deadline = None  # the timer, if pending, finds nothing due and lapses
        self._head_started = False
        _on_headers_complete(self)

    def _head_timed_out(self) -> None:
        self._head_timer = None
        deadline = self._head_deadline
        transport = self.transport
        if deadline is None or transport.is_closing():
            return
        now = self.loop.time()
        if deadline - now > 0.01:  # a later request's head, due later
            self._head_timer = self.loop.call_at(deadline, self._head_timed_out)
            return
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            # A pipelined request's head is incomplete while an earlier response is still being
            # produced: give it another period rather than cut that response.
            self._head_deadline = deadline = now + self.header_timeout
            self._head_timer = self.loop.call_at(deadline, self._head_timed_out)
            return
        if self._head_started:
            message = f"The request head (request line and headers) did not arrive within {self.header_timeout:g} s."
            transport.write(_error_bytes(408, "DEADLINE_EXCEEDED", message, self.server_state.default_headers))
        transport.close()

    # Responses uvicorn writes itself.
    def send_400_response(self, msg: str) -> None:
        if self._head_too_large:
            status, code = 431, "REQUEST_LIMIT_EXCEEDED"
            message = f"The request line and headers are larger than the limit of {MAX_HEAD_BYTES} bytes."
        else:
            status, code = 400, "BAD_REQUEST"
            message = f"{msg} The request line or headers are not valid HTTP/1.1."
        self.transport.write(_error_bytes(status, code, message, self.server_state.default_headers))
        self.transport.close()

    def _unsupported_upgrade_warning(self) -> None:
        # The backend serves no WebSocket (uvicorn runs with ws="none"): an Upgrade header is ignored and
        # the request answered as plain HTTP. uvicorn would log two warnings per such request.
        self.logger.debug("Ignored an Upgrade request header.")


def effective_max_connections(requested: int, *, explicit: bool) -> int:
    """`requested`, or less if the file-descriptor limit would not leave room for the rest of the process.

    The backend also holds descriptors for its database, replica sockets and pipes, logs and the embedded
    MLflow: a quarter of the soft RLIMIT_NOFILE (at least 64) stays free for them.
    """
    if requested < 1:
        raise ValueError(f"the connection limit must be at least 1, got {requested}")
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return requested
    ceiling = max(1, soft - max(64, soft // 4))
    if requested <= ceiling:
        return requested
    # The default clamps quietly on a small limit; a limit someone chose is worth a warning.
    log.log(
        logging.WARNING if explicit else logging.DEBUG,
        "Connection limit %d is too close to the file-descriptor limit (RLIMIT_NOFILE %d); using %d. "
        "Raise `ulimit -n` to allow more.",
        requested,
        soft,
        ceiling,
    )
    return ceiling


def protocol_class(header_timeout: float, max_connections: int) -> type[RtserveHttpProtocol]:
    """The protocol class to pass to uvicorn as `http=`, with these limits."""
    if not header_timeout > 0:
        raise ValueError(f"the header timeout must be a positive number of seconds, got {header_timeout}")
    attrs = {"header_timeout": float(header_timeout), "max_connections": int(max_connections)}
    return type("RtserveHttpProtocol", (RtserveHttpProtocol,), attrs)
