"""Databricks' permissions API for serving endpoints, at /api/2.0/permissions/serving-endpoints/{id}.

The rules (what a grant gives, who may change it) are in backend/control/endpoint_permissions.py.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from rtserve.server.api import openapi
from rtserve.server.api.deps import Params, Viewer
from rtserve.server.services import services_of

router = APIRouter(prefix="/api/2.0/permissions/serving-endpoints", tags=["permissions"])


@router.get("/{endpoint_id}", openapi_extra=openapi.GET_PERMISSIONS)
async def get_permissions(request: Request, endpoint_id: str, principal: Viewer) -> dict:
    return await services_of(request).serving_endpoints.permissions(endpoint_id, principal)


@router.get("/{endpoint_id}/permissionLevels", openapi_extra=openapi.GET_PERMISSION_LEVELS)
async def get_permission_levels(request: Request, endpoint_id: str, principal: Viewer) -> dict:
    return await services_of(request).serving_endpoints.permission_levels(endpoint_id, principal)


@router.put("/{endpoint_id}", openapi_extra=openapi.CHANGE_PERMISSIONS)
async def set_permissions(request: Request, endpoint_id: str, params: Params, principal: Viewer) -> dict:
    return await services_of(request).serving_endpoints.change_permissions(endpoint_id, params, principal, replace=True)


@router.patch("/{endpoint_id}", openapi_extra=openapi.CHANGE_PERMISSIONS)
async def update_permissions(request: Request, endpoint_id: str, params: Params, principal: Viewer) -> dict:
    return await services_of(request).serving_endpoints.change_permissions(
        endpoint_id, params, principal, replace=False
    )
