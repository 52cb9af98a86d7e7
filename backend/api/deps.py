"""Shared dependencies: the caller's identity, permission checks, and request parameters."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.requests import ClientDisconnect

from rtserve.server.auth import Permission, Principal, authorize
from rtserve.server.errors import ApiError, invalid

CONTROL_BODY_LIMIT = 1024 * 1024
# A control body is at most 1 MB: a client that takes longer than this to send one is stalling.
CONTROL_BODY_SECONDS = 30.0


# Dependencies are `async def`: FastAPI runs plain `def` ones in a thread pool, a hop per request.
async def current_principal(request: Request) -> Principal:
    principal = request.scope.get("state", {}).get("principal")
    if principal is None:  # the auth middleware guarantees one; this guards a misconfigured app
        raise ApiError("UNAUTHENTICATED", "Authentication is required.")
    return principal


def require(permission: Permission) -> Callable[[Principal], Awaitable[Principal]]:
    async def check(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        authorize(principal.permission, permission, "this operation")
        return principal

    return check


Viewer = Annotated[Principal, Depends(require(Permission.CAN_VIEW))]
Querier = Annotated[Principal, Depends(require(Permission.CAN_QUERY))]
Manager = Annotated[Principal, Depends(require(Permission.CAN_MANAGE))]
Admin = Annotated[Principal, Depends(require(Permission.ADMIN))]


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing (413) anything larger than `limit` bytes without reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError("REQUEST_LIMIT_EXCEEDED", f"Request body is larger than the limit of {limit} bytes.", 413)
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(CONTROL_BODY_SECONDS):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise ApiError(
                        "REQUEST_LIMIT_EXCEEDED", f"Request body is larger than the limit of {limit} bytes.", 413
                    )
                chunks.append(chunk)
    except TimeoutError:
        message = f"The request body did not arrive within {CONTROL_BODY_SECONDS:g} s; send it at once."
        raise ApiError("DEADLINE_EXCEEDED", message, 408) from None
    except ClientDisconnect:
        # The client went away (load generators do at the end of a run): nothing to answer, nothing to log.
        raise ApiError("BAD_REQUEST", "The client disconnected before sending the whole body.") from None
    return b"".join(chunks)


async def request_params(request: Request) -> dict[str, Any]:
    """Parameters from the query string and/or a JSON object body (clients send GET params both ways)."""
    params: dict[str, Any] = dict(request.query_params)
    body = await read_body(request, CONTROL_BODY_LIMIT)
    if body.strip():
        parsed = parse_json(body)
        if not isinstance(parsed, dict):
            raise ApiError("MALFORMED_REQUEST", "Request body must be a JSON object.")
        params.update(parsed)
    return params


def parse_json(body: bytes) -> Any:
    """A JSON body, or 400 MALFORMED_REQUEST: bad syntax or encoding, numbers too long, nesting too deep."""
    try:
        return json.loads(body)
    except RecursionError:
        raise ApiError("MALFORMED_REQUEST", "Request body is nested too deeply to parse.") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, and integers past Python's digit limit
        raise ApiError("MALFORMED_REQUEST", f"Request body is not valid JSON: {exc}") from None


Params = Annotated[dict[str, Any], Depends(request_params)]


def required_str(params: dict[str, Any], name: str) -> str:
    value = params.get(name)
    if value is None or value == "":
        raise invalid(f"Missing required parameter '{name}'.")
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise invalid(f"Parameter '{name}' must be a string; got {type(value).__name__}.")
    return str(value)


def optional_str(params: dict[str, Any], name: str) -> str | None:
    return None if params.get(name) in (None, "") else required_str(params, name)


def optional_bool(params: dict[str, Any], name: str, default: bool) -> bool:
    value = params.get(name, default)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if not isinstance(value, bool):
        raise invalid(f"Parameter '{name}' must be true or false; got {value!r}.")
    return value
