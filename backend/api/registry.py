"""Databricks' registry transition route (seed 000), next to MLflow's own which the embedded server answers."""

from __future__ import annotations

from fastapi import APIRouter, Request
from mlflow.entities.model_registry import ModelVersion

from rtserve.server.api import openapi
from rtserve.server.api.deps import Manager, Params, optional_bool, optional_str, required_str
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


def _databricks_version(mv: ModelVersion) -> dict:
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
        "permission_level": "CAN_MANAGE",
    }
