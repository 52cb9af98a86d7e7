"""Databricks' registry routes (the transition of seed 000, the SDK's get_model), next to MLflow's own which the
embedded server answers."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from mlflow.entities.model_registry import ModelVersion

from rtserve.server.api import openapi
from rtserve.server.api.deps import Manager, Params, Viewer, optional_bool, optional_str, required_str
from rtserve.server.auth import Permission
from rtserve.server.control.stages import canonical_stage
from rtserve.server.errors import invalid
from rtserve.server.services import services_of

router = APIRouter(prefix="/api/2.0/mlflow/databricks", tags=["registry"])


@router.post("/model-versions/transition-stage", openapi_extra=openapi.TRANSITION_STAGE)
async def transition_stage(request: Request, params: Params, principal: Manager) -> dict:
    services = services_of(request)
    name = required_str(params, "name")
    version = required_str(params, "version")
    stage = canonical_stage(required_str(params, "stage"))
    if stage is None:
        raise invalid("stage must be one of None, Staging, Production, Archived.")
    archive = optional_bool(params, "archive_existing_versions", False)
    comment = optional_str(params, "comment")
    model_version = await services.model_endpoints.transition(name, version, stage, archive, comment, principal.name)
    return {"model_version_databricks": _databricks_version(model_version)}


@router.get("/registered-models/get", openapi_extra=openapi.GET_REGISTERED_MODEL_DATABRICKS)
async def get_registered_model(request: Request, name: str, principal: Viewer) -> dict:
    """The SDK's `model_registry.get_model`: MLflow's registered model plus the caller's permission on it."""
    model = await asyncio.to_thread(services_of(request).registry.registered_model, name)
    level = "CAN_MANAGE" if principal.permission >= Permission.CAN_MANAGE else "CAN_READ"
    return {
        "registered_model_databricks": {
            "name": model.name,
            "id": model.name,  # MLflow's registry has no other id for a model
            "creation_timestamp": model.creation_timestamp,
            "last_updated_timestamp": model.last_updated_timestamp,
            "user_id": getattr(model, "user_id", None) or "",
            "description": model.description or "",
            "tags": [{"key": key, "value": value} for key, value in (model.tags or {}).items()],
            "latest_versions": [_databricks_version(mv, level) for mv in model.latest_versions or []],
            "permission_level": level,
        }
    }


def _databricks_version(mv: ModelVersion, permission_level: str = "CAN_MANAGE") -> dict:
    return {
        "name": mv.name,
        "version": str(mv.version),
        "creation_timestamp": mv.creation_timestamp,
        "last_updated_timestamp": mv.last_updated_timestamp,
        "user_id": mv.user_id,
        "current_stage": mv.current_stage,
        "description": mv.description or "",
        "source": mv.source,
        "run_id": mv.run_id,
        "status": mv.status,
        "status_message": mv.status_message or "",
        "aliases": list(mv.aliases or []),
        "permission_level": permission_level,
    }
