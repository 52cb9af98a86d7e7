"""Pure ASGI middleware: authentication on every route, and the split between rtserve and MLflow."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Receive, Scope, Send

from backend import mlflow_server
from backend.auth import Permission, Principal, TokenVerifier, token_from_header
from backend.errors import envelope

if TYPE_CHECKING:
    from backend.ui.session import BrowserAuth

HOST_METADATA_PATH = "/.well-known/databricks-config"
PUBLIC_PATHS = frozenset({"/health", "/ping", "/version", HOST_METADATA_PATH})


async def send_error(send: Send, status: int, error_code: str, message: str, headers: list | None = None) -> None:
    body = json.dumps(envelope(error_code, message)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            + (headers or []),
        }
    )
    await send({"type": "http.response.body", "body": body})


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
        principal = self.verifier().verify(token) if token else None
        if principal is None:
            message = (
                "A valid token is required: send 'Authorization: Bearer <token>' or Basic auth with user 'token'."
                if token is None
                else "The token is not valid (unknown or revoked). Create one with `rtserve tokens create`."
            )
            await send_error(send, 401, "UNAUTHENTICATED", message, [(b"www-authenticate", b'Bearer realm="rtserve"')])
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
        if not principal.can(needed):
            await send_error(
                send,
                403,
                "PERMISSION_DENIED",
                f"This token has {principal.permission.name}; {method} {path} needs {needed.name}.",
            )
            return
        await self.mlflow_app(scope, receive, send)
        if mlflow_server.changes_registry(method, path):
            self.on_registry_change()
