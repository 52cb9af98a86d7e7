"""The Databricks error envelope: every error leaves the backend as {error_code, message, details}."""

from __future__ import annotations

import uuid

from starlette.responses import JSONResponse

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

    def __init__(self, error_code: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.message = message
        self.status = status or STATUS_OF.get(error_code, 400)
        self.headers: dict[str, str] = {}  # e.g. Retry-After


def not_found(message: str) -> ApiError:
    return ApiError("RESOURCE_DOES_NOT_EXIST", message)


def invalid(message: str) -> ApiError:
    return ApiError("INVALID_PARAMETER_VALUE", message)


def envelope(error_code: str, message: str, request_id: str | None = None) -> dict:
    return {
        "error_code": error_code,
        "message": message,
        "details": [
            {"@type": "type.googleapis.com/google.rpc.RequestInfo", "request_id": request_id or uuid.uuid4().hex}
        ],
    }


def error_response(
    error_code: str, message: str, status: int | None = None, headers: dict | None = None
) -> JSONResponse:
    return JSONResponse(
        envelope(error_code, message), status_code=status or STATUS_OF.get(error_code, 400), headers=headers
    )
