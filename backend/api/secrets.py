"""Databricks' secrets API at /api/2.0/secrets: scopes, and secrets put, listed and deleted, never read.

Values go only into replicas' environments (a served entity's `environment_vars` refer to them as
`{{secrets/<scope>/<key>}}`); `get` is refused. Every route needs CAN_MANAGE: a token that may deploy
model code can read any secret through it, so managing secrets gives nothing more (docs/secrets.md).
"""

from __future__ import annotations

import asyncio
import base64

from fastapi import APIRouter, Request

from rtserve.server.api.deps import Manager, Params, required_str
from rtserve.server.api.openapi import operation
from rtserve.server.errors import ApiError, invalid
from rtserve.server.secret_store import check_scope
from rtserve.server.services import services_of
from rtserve.server.validate import known_fields

router = APIRouter(prefix="/api/2.0/secrets", tags=["secrets"])

_STRING = {"type": "string"}
_SCOPE = {"type": "string", "pattern": "^[A-Za-z0-9_.@-]{1,128}$"}
_KEY = {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,128}$"}
_EMPTY = {"type": "object"}
_SCOPE_QUERY = [{"name": "scope", "in": "query", "required": True, "description": "the scope", "schema": _SCOPE}]


def _body(properties: dict, required: list[str]) -> dict:
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


CREATE_SCOPE = operation(
    body=_body(
        {
            "scope": _SCOPE,
            "initial_manage_principal": {"type": "string", "enum": ["users"]},
            "scope_backend_type": {"type": "string", "enum": ["DATABRICKS"]},
        },
        ["scope"],
    ),
    ok=_EMPTY,
    errors=(409,),
)
SCOPE_BODY = operation(body=_body({"scope": _STRING}, ["scope"]), ok=_EMPTY)
_SCOPE_ITEM = _body({"name": _STRING, "backend_type": {"type": "string", "enum": ["DATABRICKS"]}}, ["name"])
LIST_SCOPES = operation(ok={"type": "object", "properties": {"scopes": {"type": "array", "items": _SCOPE_ITEM}}})
PUT_SECRET = operation(
    body=_body({"scope": _STRING, "key": _KEY, "string_value": _STRING, "bytes_value": _STRING}, ["scope", "key"]),
    ok=_EMPTY,
)
DELETE_SECRET = operation(body=_body({"scope": _STRING, "key": _STRING}, ["scope", "key"]), ok=_EMPTY)
LIST_SECRETS = operation(
    query=_SCOPE_QUERY,
    ok={
        "type": "object",
        "properties": {
            "secrets": {
                "type": "array",
                "items": _body({"key": _STRING, "last_updated_timestamp": {"type": "integer"}}, ["key"]),
            }
        },
    },
)


@router.post("/scopes/create", openapi_extra=CREATE_SCOPE)
async def create_scope(request: Request, params: Params, principal: Manager) -> dict:
    known_fields(
        params,
        "",
        ("scope", "initial_manage_principal", "scope_backend_type"),
        {"backend_azure_keyvault": "rtserve keeps secrets in its own store (scope_backend_type DATABRICKS)."},
    )
    if params.get("scope_backend_type") not in (None, "DATABRICKS"):
        raise invalid("'scope_backend_type' must be DATABRICKS: rtserve keeps secrets in its own store.")
    if params.get("initial_manage_principal") not in (None, "users"):
        raise invalid("'initial_manage_principal' may only be 'users' (every CAN_MANAGE token manages every scope).")
    scope = check_scope(required_str(params, "scope"))
    await asyncio.to_thread(services_of(request).secrets.create_scope, scope)
    return {}


@router.post("/scopes/delete", openapi_extra=SCOPE_BODY)
async def delete_scope(request: Request, params: Params, principal: Manager) -> dict:
    known_fields(params, "", ("scope",))
    await asyncio.to_thread(services_of(request).secrets.delete_scope, required_str(params, "scope"))
    return {}


@router.get("/scopes/list", openapi_extra=LIST_SCOPES)
async def list_scopes(request: Request, principal: Manager) -> dict:
    scopes = await asyncio.to_thread(services_of(request).secrets.list_scopes)
    return {"scopes": [{"name": name, "backend_type": "DATABRICKS"} for name in scopes]} if scopes else {}


@router.post("/put", openapi_extra=PUT_SECRET)
async def put_secret(request: Request, params: Params, principal: Manager) -> dict:
    known_fields(params, "", ("scope", "key", "string_value", "bytes_value"))
    scope, key = required_str(params, "scope"), required_str(params, "key")
    await asyncio.to_thread(services_of(request).secrets.put, scope, key, _value(params))
    return {}


@router.post("/delete", openapi_extra=DELETE_SECRET)
async def delete_secret(request: Request, params: Params, principal: Manager) -> dict:
    known_fields(params, "", ("scope", "key"))
    scope, key = required_str(params, "scope"), required_str(params, "key")
    await asyncio.to_thread(services_of(request).secrets.delete, scope, key)
    return {}


@router.get("/list", openapi_extra=LIST_SECRETS)
async def list_secrets(request: Request, params: Params, principal: Manager) -> dict:
    known_fields(params, "", ("scope",))
    secrets = await asyncio.to_thread(services_of(request).secrets.list, required_str(params, "scope"))
    listed = [{"key": key, "last_updated_timestamp": updated} for key, updated in secrets]
    return {"secrets": listed} if listed else {}


@router.get("/get", openapi_extra=operation(ok_description="Never: refused with 403 PERMISSION_DENIED"))
async def get_secret(principal: Manager) -> dict:
    raise ApiError(
        "PERMISSION_DENIED",
        "Secret values are readable by no API: rtserve only injects them into replicas, through a served "
        "entity's environment_vars ({{secrets/<scope>/<key>}}).",
    )


def _value(params: dict) -> str:
    """string_value, or bytes_value (base64) holding UTF-8 text: a value becomes an environment variable."""
    text, encoded = params.get("string_value"), params.get("bytes_value")
    if (text is None) == (encoded is None):
        raise invalid("Give exactly one of 'string_value' and 'bytes_value'.")
    if text is not None:
        if not isinstance(text, str):
            raise invalid("'string_value' must be a string.")
        return text
    try:
        return base64.b64decode(str(encoded), validate=True).decode()
    except ValueError:  # not base64 (binascii.Error), not ASCII, or not UTF-8 once decoded
        raise invalid("'bytes_value' must be base64 of UTF-8 text: a secret becomes an environment variable.") from None
