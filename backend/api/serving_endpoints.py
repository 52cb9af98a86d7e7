"""The GA API of seed 002: named serving endpoints at /api/2.0/serving-endpoints.

Scoring (/serving-endpoints/{name}/invocations and .../served-models/{name}/invocations) is answered
by the plain ASGI handler in backend/invocations_asgi.py, like the other scoring URLs.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from rtserve.server import logged_files
from rtserve.server.api import endpoint_openapi as endpoint_openapi_doc
from rtserve.server.api import openapi
from rtserve.server.api.deps import Manager, Params, Viewer
from rtserve.server.auth import Permission, Principal
from rtserve.server.control import inference_tables, logs, rate_limits
from rtserve.server.control.endpoint_permissions import effective_permission
from rtserve.server.control.serving_endpoints import ServingEndpointState
from rtserve.server.control.status import serving_endpoint as serving_status
from rtserve.server.errors import not_found
from rtserve.server.services import Services, services_of

router = APIRouter(prefix="/api/2.0/serving-endpoints", tags=["serving-endpoints"])


def _detail(request: Request, endpoint: ServingEndpointState, principal: Principal) -> dict:
    detail = serving_status.endpoint_detail(
        endpoint, services_of(request).controller.snapshot.views, str(request.base_url)
    )
    return {**detail, "permission_level": _permission_level(endpoint, principal)}


def _permission_level(endpoint: ServingEndpointState, principal: Principal) -> str:
    """The caller's level on the endpoint, in Databricks' words (an ADMIN token manages every endpoint)."""
    return min(effective_permission(principal, endpoint.grants), Permission.CAN_MANAGE).name


@router.post("", openapi_extra=openapi.CREATE_SERVING_ENDPOINT)
async def create(request: Request, params: Params, principal: Manager) -> dict:
    endpoint = await services_of(request).serving_endpoints.create(params, principal.name)
    return _detail(request, endpoint, principal)


@router.get("", openapi_extra=openapi.LIST_SERVING_ENDPOINTS)
async def list_endpoints(request: Request, principal: Viewer) -> dict:
    services = services_of(request)
    views = services.controller.snapshot.views
    endpoints = await services.serving_endpoints.list_all()
    return {
        "endpoints": [
            {**serving_status.endpoint_summary(e, views), "permission_level": _permission_level(e, principal)}
            for e in endpoints
        ]
    }


@router.get("/{name}", openapi_extra=openapi.GET_SERVING_ENDPOINT)
async def get(request: Request, name: str, principal: Viewer) -> dict:
    return _detail(request, await services_of(request).serving_endpoints.require(name), principal)


@router.delete("/{name}", openapi_extra=openapi.DELETE_SERVING_ENDPOINT)
async def delete(request: Request, name: str, principal: Viewer) -> dict:
    await services_of(request).serving_endpoints.delete(name, principal)
    return {}


@router.put("/{name}/config", openapi_extra=openapi.UPDATE_CONFIG)
async def update_config(request: Request, name: str, params: Params, principal: Viewer) -> dict:
    endpoint = await services_of(request).serving_endpoints.update_config(name, params, principal)
    return _detail(request, endpoint, principal)


@router.patch("/{name}/tags", openapi_extra=openapi.PATCH_TAGS)
async def patch_tags(request: Request, name: str, params: Params, principal: Viewer) -> dict:
    return {"tags": await services_of(request).serving_endpoints.patch_tags(name, params, principal)}


@router.patch("/{name}/notifications", openapi_extra=openapi.PATCH_NOTIFICATIONS)
async def patch_notifications(request: Request, name: str, params: Params, principal: Viewer) -> dict:
    """The SDK's update_notifications: the given notifications replace the endpoint's (absent: none)."""
    notifications = await services_of(request).serving_endpoints.set_email_notifications(name, params, principal)
    return {"name": name, **({"email_notifications": stored} if (stored := notifications.to_stored()) else {})}


@router.put("/{name}/rate-limits", openapi_extra=openapi.PUT_RATE_LIMITS)
async def put_rate_limits(request: Request, name: str, params: Params, principal: Viewer) -> dict:
    """The legacy rate-limits API (Databricks now steers to the AI gateway); both set the same limits."""
    limits = rate_limits.parse_rate_limits(params.get("rate_limits", []))
    return {
        "rate_limits": [
            limit.to_stored()
            for limit in await services_of(request).serving_endpoints.set_rate_limits(name, limits, principal)
        ]
    }


@router.put("/{name}/ai-gateway", openapi_extra=openapi.PUT_AI_GATEWAY)
async def put_ai_gateway(request: Request, name: str, params: Params, principal: Viewer) -> dict:
    limits = rate_limits.parse_ai_gateway(params)
    endpoint = await services_of(request).serving_endpoints.set_ai_gateway(name, limits, params, principal)
    return {
        "rate_limits": [limit.to_stored() for limit in endpoint.rate_limits],
        **inference_tables.gateway_output(endpoint.inference_tables),
    }


@router.get("/{name}/served-models/{served_model}/logs", openapi_extra=openapi.SERVED_MODEL_LOGS)
async def served_model_logs(request: Request, name: str, served_model: str, _: Viewer) -> dict:
    services = services_of(request)
    model, version = await _served_version(services, name, served_model)
    text = await asyncio.to_thread(logs.version_logs, services.settings.data_dir, model, version, None)
    return {"logs": text}


@router.get("/{name}/served-models/{served_model}/build-logs", openapi_extra=openapi.SERVED_MODEL_LOGS)
async def served_model_build_logs(request: Request, name: str, served_model: str, _: Viewer) -> dict:
    """A version's build: its environment (the decision, uv's output) and its preparation's events."""
    services = services_of(request)
    model, version = await _served_version(services, name, served_model)
    return {"logs": await logs.build_logs(services.sessions, services.settings.data_dir, model, version)}


@router.get("/{name}/openapi", openapi_extra=openapi.ENDPOINT_OPENAPI)
async def endpoint_openapi(request: Request, name: str, _: Viewer) -> dict:
    """The endpoint's scoring paths, typed by each served model's signature, with its input example."""
    services = services_of(request)
    endpoint = await services.serving_endpoints.require(name)
    config = endpoint.live_config
    served = []
    for entity in config.served_entities if config else ():
        model, version = entity.key
        example = await logged_files.example_request(services, model, version)
        columns = await logged_files.signature_inputs(services, model, version)
        served.append(endpoint_openapi_doc.ServedModelDoc(entity.name, model, version, columns, example))
    return endpoint_openapi_doc.document(name, str(request.base_url), served)


@router.get("/{name}/metrics", response_class=openapi.PrometheusText, openapi_extra=openapi.PROMETHEUS)
async def endpoint_metrics(request: Request, name: str, _: Viewer) -> Response:
    services = services_of(request)
    endpoint = await services.serving_endpoints.require(name)
    versions = {entity.key for entity in endpoint.entities()}
    return Response(services.metrics.exposition_for(versions), media_type=CONTENT_TYPE_LATEST)


async def _served_version(services: Services, name: str, served_model: str) -> tuple[str, str]:
    entity = (await services.serving_endpoints.require(name)).served_entity(served_model)
    if entity is None:
        raise not_found(f"Serving endpoint '{name}' has no served model '{served_model}'.")
    return entity.key
