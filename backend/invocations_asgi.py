"""The scoring URLs as a plain ASGI handler: the hot path skips FastAPI's routing and dependencies.

POST /model-endpoint/{model}/{route}/invocations, /model/{model}/{route}/invocations and the serving
endpoints' /serving-endpoints/{name}[/served-models/{served}]/invocations are answered here, after
AuthMiddleware put the caller in scope; every other request goes on to the FastAPI app. Same
checks, same errors, same metrics as the API: only the framework work is gone (it cost about 1 ms
of the gateway's CPU per request, as much as the replica's own parsing).

URL segments are matched on the raw path and percent-decoded once, as the control API decodes
them. A client that disconnects while its request waits (for a replica, or for the answer) cancels
it: the request leaves the queue at once and nobody waits for a replica's answer to it.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TypeVar
from urllib.parse import unquote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rtserve.server import gateway
from rtserve.server.allow import SCORING_ALLOW
from rtserve.server.auth import Principal
from rtserve.server.control.endpoint import TRAFFIC_SPLIT, EndpointKind
from rtserve.server.engines.base import InvocationResult
from rtserve.server.errors import REQUEST_INFO, ApiError, request_id_of, send_error
from rtserve.server.services import Services

INVOCATIONS = re.compile(rb"^/(?:model-endpoint|model)/([^/]+)/([^/]+)/invocations$")
# Named endpoints (GA API): the traffic split, or one served model.
SERVING_INVOCATIONS = re.compile(rb"^/serving-endpoints/([^/]+)(?:/served-models/([^/]+))?/invocations$")
Answer = tuple[int, bytes, list[tuple[bytes, bytes]]]
T = TypeVar("T")


def _segment(raw: bytes) -> str:
    return unquote(raw.decode("latin-1"))


class ClientGone(Exception):
    """The client closed its connection before the answer was ready."""


class InvocationsEndpoint:
    def __init__(self, app: ASGIApp, services: Callable[[], Services]) -> None:
        self.app = app
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("raw_path") or scope["path"].encode()
        score: Callable[[], Awaitable[Answer]]
        if match := INVOCATIONS.match(path):
            model, route = _segment(match.group(1)), _segment(match.group(2))
            score = partial(self._score, scope, receive, EndpointKind.MODEL, model, route)
        elif match := SERVING_INVOCATIONS.match(path):
            name, served = _segment(match.group(1)), match.group(2)
            route = TRAFFIC_SPLIT if served is None else _segment(served)
            score = partial(self._score, scope, receive, EndpointKind.SERVING, name, route)
        else:
            await self.app(scope, receive, send)
            return
        if scope["method"] != "POST":
            message = f"{scope['method']} is not allowed on {scope['path']}; send the request with POST."
            await send_error(scope, send, 405, "METHOD_NOT_ALLOWED", message, [(b"allow", SCORING_ALLOW.encode())])
            return
        try:
            status, body, headers = await score()
        except ClientGone:
            return  # nobody to answer
        except ApiError as exc:
            headers = [(name.lower().encode(), value.encode()) for name, value in exc.headers.items()]
            await send_error(scope, send, exc.status, exc.error_code, exc.message, headers)
            return
        if status >= 400:
            body = _with_request_id(body, request_id_of(scope))
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [*headers, (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _score(self, scope: Scope, receive: Receive, kind: EndpointKind, name: str, route: str) -> Answer:
        arrived = time.time()
        services = self.services()
        principal: Principal = scope["state"]["principal"]
        await services.admission.admit(services.controller.snapshot, kind, name, principal, "querying it")
        if services.controller.synced.is_set():  # 404 before reading the body
            deadline = asyncio.get_running_loop().time() + services.settings.request_timeout_seconds
            await gateway.resolve_when_known(services, kind, name, route, deadline)
        body, content_type = await self._request(scope, receive, services)
        scoring = gateway.score(services, kind, name, route, body, content_type)
        scored = await _unless_client_leaves(scoring, receive)
        result, destination = scored.result, scored.destination
        services.inference_log.record(
            kind, name, request_id_of(scope), principal.name, destination.served_name, destination.key, arrived,
            result.status, body, result.body,
        )  # fmt: skip
        return _answer(result, destination.served_name)

    async def _request(self, scope: Scope, receive: Receive, services: Services) -> tuple[bytes, str]:
        headers = dict(scope["headers"])
        settings = services.settings
        body = await _read_body(
            receive, headers.get(b"content-length"), settings.max_request_bytes, settings.request_timeout_seconds
        )
        return body, headers.get(b"content-type", b"application/json").decode("latin-1")


async def _unless_client_leaves(scoring: Awaitable[T], receive: Receive) -> T:
    """Await `scoring` in this task; if the client disconnects first, cancel it and raise ClientGone.

    The body has been read, so the next message the server has for this request is its disconnect.
    One watcher task per request, and the scoring stays in the request's own task (the hot path).
    """
    task = asyncio.current_task()
    assert task is not None
    left = asyncio.Event()
    watcher = asyncio.ensure_future(_cancel_when_gone(receive, task, left))
    try:
        return await scoring
    except asyncio.CancelledError:
        if not left.is_set():
            raise  # cancelled by the server (shutdown), not by the client leaving
        task.uncancel()
        raise ClientGone from None
    finally:
        watcher.cancel()


async def _cancel_when_gone(receive: Receive, task: asyncio.Task, left: asyncio.Event) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    left.set()
    task.cancel()


def _with_request_id(body: bytes, request_id: str) -> bytes:
    """A replica's error envelope with the request's id in `details`, as every other error has it."""
    try:
        error = json.loads(body)
    except ValueError:
        return body
    if not isinstance(error, dict) or "error_code" not in error:
        return body
    error.setdefault("details", [{"@type": REQUEST_INFO, "request_id": request_id}])
    return json.dumps(error).encode()


def _answer(result: InvocationResult, served_model_name: str) -> Answer:
    headers = [(b"content-type", result.content_type.encode()), (b"served-model-name", served_model_name.encode())]
    return result.status, result.body, headers


async def _read_body(receive: Receive, declared: bytes | None, limit: int, timeout: float) -> bytes:
    """The whole body: 413 past `limit` bytes, 408 if it has not all arrived within `timeout` seconds."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            while True:
                message: Message = await receive()
                if message["type"] == "http.disconnect":
                    raise ApiError("BAD_REQUEST", "The client disconnected before sending the whole body.")
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise _too_large(limit)
                chunks.append(chunk)
                if not message.get("more_body", False):
                    return b"".join(chunks)
    except TimeoutError:
        raise ApiError(
            "DEADLINE_EXCEEDED", f"The request body did not arrive within {timeout:g} s; send it at once.", 408
        ) from None


def _too_large(limit: int) -> ApiError:
    return ApiError("REQUEST_LIMIT_EXCEEDED", f"Request body is larger than the limit of {limit} bytes.", 413)
