"""The preview API of seed 000: /api/2.0/preview/mlflow/endpoints-v2/*."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request

from rtserve.server.api import openapi
from rtserve.server.api.deps import Manager, Params, Viewer, optional_str, required_str
from rtserve.server.control import logs
from rtserve.server.control.model_endpoints import SPEC
from rtserve.server.control.status import model_endpoint as model_status
from rtserve.server.control.workloads import WORKLOAD_SIZES
from rtserve.server.errors import invalid, not_found
from rtserve.server.services import services_of
from rtserve.server.validate import known_fields

router = APIRouter(prefix="/api/2.0/preview/mlflow/endpoints-v2", tags=["endpoints-v2"])
# Seed 000 also shows the compute route under /preview/model-serving-api/; both reach the same handler.
legacy_router = APIRouter(prefix="/api/2.0/preview/model-serving-api/endpoints-v2", tags=["endpoints-v2"])
MODEL = "registered_model_name"


@router.post("/enable", openapi_extra=openapi.ENABLE)
async def enable(request: Request, params: Params, principal: Manager) -> dict:
    known_fields(params, "", (MODEL,))
    await services_of(request).model_endpoints.enable(required_str(params, MODEL), principal.name)
    return {}


@router.post("/disable", openapi_extra=openapi.DISABLE)
async def disable(request: Request, params: Params, principal: Manager) -> dict:
    known_fields(params, "", (MODEL,))
    await services_of(request).model_endpoints.disable(required_str(params, MODEL), principal.name)
    return {}


@router.put("/update-compute-config", openapi_extra=openapi.UPDATE_COMPUTE_CONFIG)
@legacy_router.put("/update-compute-config", openapi_extra=openapi.UPDATE_COMPUTE_CONFIG)
async def update_compute_config(request: Request, params: Params, principal: Manager) -> dict:
    known_fields(params, "", (MODEL, "stage", SPEC))
    spec = params.get(SPEC)
    if not isinstance(spec, dict):
        raise invalid(f"Missing required parameter '{SPEC}' (an object).")
    await services_of(request).model_endpoints.update_compute_config(
        required_str(params, MODEL), required_str(params, "stage"), spec, principal.name
    )
    return {}


@router.get("/get-status", openapi_extra=openapi.GET_STATUS)
async def get_status(request: Request, params: Params, _: Viewer) -> dict:
    services = services_of(request)
    model = required_str(params, MODEL)
    configs = await services.model_endpoints.require_enabled(model)
    return {"endpoint_status": model_status.endpoint_status(services.controller.snapshot, model, configs)}


@router.get("/list-versions", openapi_extra=openapi.LIST_VERSIONS)
async def list_versions(request: Request, params: Params, _: Viewer) -> dict:
    services = services_of(request)
    model = required_str(params, MODEL)
    configs = await services.model_endpoints.require_enabled(model)
    views = model_status.version_views(services.controller.snapshot, model)
    return {"endpoint_statuses": [model_status.version_status(v, configs) for v in views]}


@router.get("/get-version-status", openapi_extra=openapi.GET_VERSION_STATUS)
async def get_version_status(request: Request, params: Params, _: Viewer) -> dict:
    services = services_of(request)
    model = required_str(params, MODEL)
    version = required_str(params, "endpoint_version_name")
    configs = await services.model_endpoints.require_enabled(model)
    view = model_status.staged_view(services.controller.snapshot, model, version)
    if view is None:
        raise not_found(f"Version '{version}' of '{model}' is not served (it is in no serving stage).")
    return {"endpoint_status": model_status.version_status(view, configs)}


@router.get("/list-version-aliases", openapi_extra=openapi.LIST_VERSION_ALIASES)
async def list_version_aliases(request: Request, params: Params, _: Viewer) -> dict:
    services = services_of(request)
    model = required_str(params, MODEL)
    await services.model_endpoints.require_enabled(model)
    routes = services.controller.snapshot.model_routes(model)
    ordered = sorted(routes.items(), key=lambda item: (item[0] not in ("Staging", "Production"), item[0]))
    return {"aliases": [{"alias": alias, "endpoint_version_name": version} for alias, version in ordered]}


@router.get("/get-supported-workload-sizes", openapi_extra=openapi.GET_SUPPORTED_WORKLOAD_SIZES)
async def get_supported_workload_sizes(_: Viewer) -> dict:
    return {
        "workload_sizes": [
            {"key": s.key, "min_concurrency": s.min_concurrency, "max_concurrency": s.max_concurrency}
            for s in WORKLOAD_SIZES.values()
        ]
    }


@router.get("/get-version-replicas", openapi_extra=openapi.GET_VERSION_REPLICAS)
async def get_version_replicas(request: Request, params: Params, _: Viewer) -> dict:
    services = services_of(request)
    model = required_str(params, MODEL)
    version = required_str(params, "endpoint_version_name")
    await services.model_endpoints.require_enabled(model)
    replicas = [r for r in services.engine.replicas() if r.model_name == model and r.version == version]
    return {
        "replicas": [
            {
                "replica_name": r.replica_id,
                "replica_id": r.replica_id,
                "last_known_status": r.state.value,
                "message": r.message,
                "started_at": int(r.started_at * 1000),
            }
            for r in sorted(replicas, key=lambda r: r.started_at)
        ]
    }


@router.get("/get-version-logs", openapi_extra=openapi.GET_VERSION_LOGS)
@router.post("/get-version-logs", openapi_extra=openapi.POST_VERSION_LOGS)
async def get_version_logs(request: Request, params: Params, _: Viewer) -> dict:
    services = services_of(request)
    model = required_str(params, MODEL)
    version = required_str(params, "endpoint_version_name")
    await services.model_endpoints.require_enabled(model)
    replica_id = optional_str(params, "replica_id")
    text = await asyncio.to_thread(logs.version_logs, services.settings.data_dir, model, version, replica_id)
    return {"logs": text}


@router.get("/get-version-build-logs", openapi_extra=openapi.GET_VERSION_BUILD_LOGS)
async def get_version_build_logs(request: Request, params: Params, _: Viewer) -> dict:
    """The version's environment build (the decision, uv's output with timings) and its preparation's events."""
    services = services_of(request)
    model = required_str(params, MODEL)
    version = required_str(params, "endpoint_version_name")
    await services.model_endpoints.require_enabled(model)
    return {"logs": await logs.build_logs(services.sessions, services.settings.data_dir, model, version)}


@router.get("/get-event-history", openapi_extra=openapi.GET_EVENT_HISTORY)
async def get_event_history(request: Request, params: Params, _: Viewer) -> dict:
    services = services_of(request)
    model = required_str(params, MODEL)
    version = optional_str(params, "endpoint_version_name")
    return {"events": await logs.event_history(services.sessions, model, version)}
