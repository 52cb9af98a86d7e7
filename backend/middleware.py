"""Pure ASGI middleware: the outermost error layer, authentication on every route, and the split
between rtserve and MLflow."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rtserve.server import mlflow_server
from rtserve.server.auth import Permission, Principal, TokenVerifier, authorize, token_from_header
from rtserve.server.errors import STATUS_OF, ApiError, new_request_id, send_error

if TYPE_CHECKING:
    from rtserve.server.ui.session import BrowserAuth

log = logging.getLogger("rtserve")

HOST_METADATA_PATH = "/.well-known/databricks-config"
PUBLIC_PATHS = frozenset({"/health", "/ping", "/version", HOST_METADATA_PATH})
# The most of a non-JSON error body from MLflow kept for the log.
MAX_LOGGED_BODY = 4096
MAX_WEBHOOK_BODY = 1024 * 1024


class ErrorLayer:
    """The outermost layer: gives each request its id, and turns any exception into the 500 envelope.

    The id is in every error envelope (`details[0].request_id`), in the `x-request-id` header of
    every answer, and in the log line that carries an unexpected exception's traceback, so a user's
    error report leads to the traceback.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_request_id()
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        header = (b"x-request-id", request_id.encode())
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            if not state.get("error_logged"):
                log.exception("Unexpected error in %s %s (request id %s)", scope["method"], scope["path"], request_id)
            if not started:
                await send_error(
                    scope,
                    send_with_id,
                    500,
                    "INTERNAL_ERROR",
                    f"rtserve hit an unexpected error (request id {request_id}); the backend's log has the details.",
                )


def mark_logged(scope: Scope) -> None:
    """An inner handler logged this request's exception with its id already; the error layer must not again."""
    scope.setdefault("state", {})["error_logged"] = True


class AuthMiddleware:
    """Puts the caller's Principal in scope["state"]; 401 without a valid token.

    With `browser`, the browser UI's paths (/ui/ and `/`) authenticate with its session cookie instead,
    and redirect to its sign-in page; the cookie is never accepted on any other path (no CSRF on the API).
    """

    def __init__(
        self,
        app: ASGIApp,
        verifier: Callable[[], TokenVerifier],
        public_paths=PUBLIC_PATHS,
        browser: BrowserAuth | None = None,
    ) -> None:
        self.app = app
        self.verifier = verifier
        self.public_paths = public_paths
        self.browser = browser

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.public_paths:
            await self.app(scope, receive, send)
            return
        if self.browser is not None and self.browser.handles(scope["path"]):
            await self.browser(self.app, scope, receive, send)
            return
        authorization = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"), None)
        token = token_from_header(authorization)
        principal = await self.verifier().check(token) if token else None
        if principal is None:
            message = (
                "A valid token is required: send 'Authorization: Bearer <token>' or Basic auth with user 'token'."
                if token is None
                else "The token is not valid (unknown or revoked). Create one with `rtserve tokens create`."
            )
            await send_error(
                scope, send, 401, "UNAUTHENTICATED", message, [(b"www-authenticate", b'Bearer realm="rtserve"')]
            )
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)


class MlflowDispatch:
    """Sends MLflow's REST paths to the embedded MLflow server (with rtserve's permission checks)."""

    def __init__(self, app: ASGIApp, mlflow_app: ASGIApp | None, on_registry_change: Callable[[], None]) -> None:
        self.app = app
        self.mlflow_app = mlflow_app
        self.on_registry_change = on_registry_change

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.mlflow_app is None or not mlflow_server.is_mlflow_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        principal: Principal = scope["state"]["principal"]
        needed = Permission.CAN_VIEW if mlflow_server.is_read(method, path) else Permission.CAN_MANAGE
        try:
            authorize(principal.permission, needed, f"{method} {path}")
        except ApiError as refusal:
            await send_error(scope, send, refusal.status, refusal.error_code, refusal.message)
            return
        if mlflow_server.is_webhook_write(method, path):
            body = await _read_all(receive)
            if body is None:
                message = f"A webhook request body is larger than the limit of {MAX_WEBHOOK_BODY} bytes."
                await send_error(scope, send, 413, "REQUEST_LIMIT_EXCEEDED", message)
                return
            problem = mlflow_server.webhook_problem(_json_or_none(body))
            if problem is not None:
                await send_error(scope, send, 400, "INVALID_PARAMETER_VALUE", problem)
                return
            receive = _replay(body)
        await self.mlflow_app(scope, receive, _json_errors(scope, send))
        if mlflow_server.changes_registry(method, path):
            self.on_registry_change()


async def _read_all(receive: Receive) -> bytes | None:
    """The whole request body, or None past MAX_WEBHOOK_BODY."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if size > MAX_WEBHOOK_BODY:
            return None
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _json_or_none(body: bytes) -> object:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None  # MLflow's own parser words the refusal


def _replay(body: bytes) -> Receive:
    """A `receive` that gives `body` once, then waits for the real disconnect."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


def _json_errors(scope: Scope, send: Send) -> Send:
    """MLflow's `send`, with its non-JSON error pages (Flask's HTML 404/405/500) replaced by the envelope."""
    replaced: list[bytes] | None = None
    status = 0

    async def send_json_errors(message: Message) -> None:
        nonlocal replaced, status
        if message["type"] == "http.response.start":
            status = message["status"]
            content_type = next((v for k, v in message.get("headers", ()) if k.lower() == b"content-type"), b"")
            if status >= 400 and not content_type.startswith(b"application/json"):
                replaced = []  # hold MLflow's page back; the envelope goes out once it ends
                return
        elif replaced is not None and message["type"] == "http.response.body":
            if sum(map(len, replaced)) < MAX_LOGGED_BODY:
                replaced.append(message.get("body", b""))
            if not message.get("more_body", False):
                await _send_mlflow_error(scope, send, status, b"".join(replaced))
            return
        await send(message)

    return send_json_errors


async def _send_mlflow_error(scope: Scope, send: Send, status: int, page: bytes) -> None:
    method, path = scope["method"], scope["path"]
    if status == 404:
        code, message = "ENDPOINT_NOT_FOUND", f"No API route {method} {path}."
    elif status == 405:
        code, message = "METHOD_NOT_ALLOWED", f"{method} is not allowed on {path}."
    elif status >= 500:
        request_id = scope["state"]["request_id"]
        log.error("The embedded MLflow failed on %s %s (request id %s): %s", method, path, request_id, page)
        code = "INTERNAL_ERROR" if status == 500 else "TEMPORARILY_UNAVAILABLE"
        message = f"The model registry failed on this request (request id {request_id}); check the request's fields."
    else:
        code = next((code for code, known in STATUS_OF.items() if known == status), "BAD_REQUEST")
        message = f"The model registry refused the request: {_text_of(page)}"
    await send_error(scope, send, status, code, message)


def _text_of(page: bytes) -> str:
    """The words of an HTML error page, without its tags."""
    text = re.sub(r"<[^>]+>", " ", page[:MAX_LOGGED_BODY].decode("utf-8", errors="replace"))
    return " ".join(text.split())[:500] or "no reason given"
