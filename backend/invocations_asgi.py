"""The scoring URLs as a plain ASGI handler: the hot path skips FastAPI's routing and dependencies.

POST /model-endpoint/{model}/{target}/invocations, /model/{model}/{target}/invocations and the named
endpoints' /serving-endpoints/{name}[/served-models/{served}]/invocations are answered here, after
AuthMiddleware put the caller in scope; every other request goes on to the FastAPI app. Same
checks, same errors, same metrics as the API: only the framework work is gone (it cost about 1 ms
of the gateway's CPU per request, as much as the replica's own parsing).
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from functools import partial
from urllib.parse import unquote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend import gateway
from backend.auth import Permission, Principal
from backend.engines.base import InvocationResult
from backend.errors import ApiError, envelope
from backend.services import Services

INVOCATIONS = re.compile(r"^/(?:model-endpoint|model)/([^/]+)/([^/]+)/invocations$")
# Named endpoints (GA API): the traffic split, or one served model.
SERVING_INVOCATIONS = re.compile(r"^/serving-endpoints/([^/]+)(?:/served-models/([^/]+))?/invocations$")


class InvocationsEndpoint:
    def __init__(self, app: ASGIApp, services: Callable[[], Services]) -> None:
        self.app = app
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        score: Callable[[], Awaitable[tuple[int, bytes, list[tuple[bytes, bytes]]]]]
        if match := INVOCATIONS.match(path):
            model, target = unquote(match.group(1)), unquote(match.group(2))
            score = partial(self._score, scope, receive, model, target)
        elif match := SERVING_INVOCATIONS.match(path):
            name, served = unquote(match.group(1)), match.group(2)
            score = partial(self._score_served, scope, receive, name, None if served is None else unquote(served))
        else:
            await self.app(scope, receive, send)
            return
        try:
            status, body, headers = await score()
        except ApiError as exc:
            status, headers = exc.status, [(b"content-type", b"application/json")]
            headers += [(name.lower().encode(), value.encode()) for name, value in exc.headers.items()]
            body = json.dumps(envelope(exc.error_code, exc.message)).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [*headers, (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _score(
        self, scope: Scope, receive: Receive, model: str, target: str
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        services = self._services_for_query(scope)
        if services.controller.synced.is_set():
            gateway.resolve(services.controller, model, target)  # 404 before reading a body we cannot use
        body, content_type = await self._request(scope, receive, services)
        scored = await gateway.score_and_record(services, model, target, body, content_type)
        return _answer(scored.result, f"{model}-{scored.version}")

    async def _score_served(
        self, scope: Scope, receive: Receive, name: str, served_model: str | None
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        services = self.services()
        services.serving.admit_query(name, scope["state"]["principal"], "querying it")
        if services.controller.synced.is_set():
            gateway.resolve_served(services.controller, name, served_model)  # 404 before reading the body
        body, content_type = await self._request(scope, receive, services)
        entity, scored = await gateway.score_served(services, name, served_model, body, content_type)
        return _answer(scored.result, entity.name)

    def _services_for_query(self, scope: Scope) -> Services:
        principal: Principal = scope["state"]["principal"]
        if not principal.can(Permission.CAN_QUERY):
            raise ApiError(
                "PERMISSION_DENIED",
                f"This token has {principal.permission.name}; this operation needs {Permission.CAN_QUERY.name}.",
            )
        return self.services()

    async def _request(self, scope: Scope, receive: Receive, services: Services) -> tuple[bytes, str]:
        headers = dict(scope["headers"])
        body = await _read_body(receive, headers.get(b"content-length"), services.settings.max_request_bytes)
        return body, headers.get(b"content-type", b"application/json").decode("latin-1")


def _answer(result: InvocationResult, served_model_name: str) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    headers = [(b"content-type", result.content_type.encode()), (b"served-model-name", served_model_name.encode())]
    return result.status, result.body, headers


async def _read_body(receive: Receive, declared: bytes | None, limit: int) -> bytes:
    too_large = ApiError("REQUEST_LIMIT_EXCEEDED", f"Request body is larger than the limit of {limit} bytes.", 413)
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            raise ApiError("BAD_REQUEST", "The client disconnected before sending the whole body.")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
