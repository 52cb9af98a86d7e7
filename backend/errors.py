"""The Databricks error envelope: every error leaves the backend as {error_code, message, details}."""

from __future__ import annotations

import json
import uuid

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import Scope, Send

REQUEST_INFO = "type.googleapis.com/google.rpc.RequestInfo"

STATUS_OF = {
    "INVALID_PARAMETER_VALUE": 400,
    "BAD_REQUEST": 400,
    "INVALID_STATE": 400,
    "MALFORMED_REQUEST": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "RESOURCE_DOES_NOT_EXIST": 404,
    "ENDPOINT_NOT_FOUND": 404,
    "METHOD_NOT_ALLOWED": 405,
    "RESOURCE_ALREADY_EXISTS": 409,
    "RESOURCE_CONFLICT": 409,
    "REQUEST_LIMIT_EXCEEDED": 429,
    "RESOURCE_EXHAUSTED": 429,
    "INTERNAL_ERROR": 500,
    "TEMPORARILY_UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}


class ApiError(Exception):
    """A failure the client should see, with its Databricks error code."""

    def __init__(
        self, error_code: str, message: str, status: int | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.message = message
        self.status = status or STATUS_OF.get(error_code, 400)
        self.headers: dict[str, str] = headers or {}  # e.g. Retry-After


def not_found(message: str) -> ApiError:
    return ApiError("RESOURCE_DOES_NOT_EXIST", message)


def invalid(message: str) -> ApiError:
    return ApiError("INVALID_PARAMETER_VALUE", message)


def new_request_id() -> str:
    return uuid.uuid4().hex


def request_id_of(scope: Scope) -> str:
    """The id the outermost layer gave this request (logged with any traceback), or a fresh one."""
    request_id = scope.get("state", {}).get("request_id")
    return request_id if isinstance(request_id, str) else new_request_id()


def envelope(error_code: str, message: str, request_id: str | None = None) -> dict:
    return {
        "error_code": error_code,
        "message": message,
        "details": [{"@type": REQUEST_INFO, "request_id": request_id or new_request_id()}],
    }


def error_body(error_code: str, message: str, request_id: str | None = None) -> bytes:
    return json.dumps(envelope(error_code, message, request_id)).encode()


def error_response(
    request: Request, error_code: str, message: str, status: int | None = None, headers: dict | None = None
) -> JSONResponse:
    return JSONResponse(
        envelope(error_code, message, request_id_of(request.scope)),
        status_code=status or STATUS_OF.get(error_code, 400),
        headers=headers,
    )


async def send_error(
    scope: Scope, send: Send, status: int, error_code: str, message: str, headers: list | None = None
) -> None:
    """Answer with the envelope from plain ASGI code (the layers outside FastAPI)."""
    body = error_body(error_code, message, request_id_of(scope))
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            + (headers or []),
        }
    )
    await send({"type": "http.response.body", "body": body})
