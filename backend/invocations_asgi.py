"""The scoring URLs as a plain ASGI handler: the hot path skips FastAPI's routing and dependencies.

POST /model-endpoint/{model}/{target}/invocations and /model/{model}/{target}/invocations are
answered here, after AuthMiddleware put the caller in scope; every other request goes on to the
FastAPI app. Same checks, same errors, same metrics as the API: only the framework work is gone
(it cost about 1 ms of the gateway's CPU per request, as much as the replica's own parsing).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from urllib.parse import unquote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend import gateway
from backend.auth import Permission, Principal
from backend.errors import ApiError, envelope
from backend.services import Services

INVOCATIONS = re.compile(r"^/(?:model-endpoint|model)/([^/]+)/([^/]+)/invocations$")


class InvocationsEndpoint:
    def __init__(self, app: ASGIApp, services: Callable[[], Services]) -> None:
        self.app = app
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = INVOCATIONS.match(scope["path"]) if scope["type"] == "http" else None
        if match is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        model, target = unquote(match.group(1)), unquote(match.group(2))
        try:
            status, body, headers = await self._score(scope, receive, model, target)
        except ApiError as exc:
            status, headers = exc.status, [(b"content-type", b"application/json")]
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
        principal: Principal = scope["state"]["principal"]
        if not principal.can(Permission.CAN_QUERY):
            raise ApiError(
                "PERMISSION_DENIED",
                f"This token has {principal.permission.name}; this operation needs {Permission.CAN_QUERY.name}.",
            )
        services = self.services()
        if services.controller.synced.is_set():
            gateway.resolve(services.controller, model, target)  # 404 before reading a body we cannot use
        headers = dict(scope["headers"])
        body = await _read_body(receive, headers.get(b"content-length"), services.settings.max_request_bytes)
        content_type = headers.get(b"content-type", b"application/json").decode("latin-1")
        scored = await gateway.score_and_record(services, model, target, body, content_type)
        result = scored.result
        return (
            result.status,
            result.body,
            [
                (b"content-type", result.content_type.encode()),
                (b"served-model-name", f"{model}-{scored.version}".encode()),
            ],
        )


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
