"""The preview API's status objects (a model endpoint and its served versions), from the published snapshot."""

from __future__ import annotations

from rtserve.server.control.placement import Placement
from rtserve.server.control.reconciler import VersionState, VersionView
from rtserve.server.control.snapshot import Snapshot
from rtserve.server.control.workloads import SERVING_STAGES
from rtserve.server.store.models import ComputeConfig

ENDPOINT_STATE = {
    VersionState.PENDING: "ENDPOINT_STATE_PENDING",
    VersionState.READY: "ENDPOINT_STATE_READY",
    VersionState.FAILED: "ENDPOINT_STATE_FAILED",
}
SERVICE_STATE = {
    VersionState.PENDING: "SERVICE_STATE_PENDING",
    VersionState.READY: "SERVICE_STATE_READY",
    VersionState.FAILED: "SERVICE_STATE_FAILED",
}


def compute_config_json(row: ComputeConfig) -> dict:
    spec = {"workload_size_id": row.workload_size_id, "scale_to_zero_enabled": row.scale_to_zero_enabled}
    # rtserve's extensions appear only when used, keeping Databricks' shape.
    if row.max_batch_size > 1:
        spec.update(max_batch_size=row.max_batch_size, max_batch_wait_ms=row.max_batch_wait_ms)
    if (placement := Placement.from_json(row.placement)) is not None:
        spec["placement"] = placement.to_wire()
    return {
        "stage": row.stage,
        "creation_timestamp": row.creation_timestamp,
        "user_id": row.user_id,
        "workload_spec": spec,
    }


def _config_for_view(view: VersionView, configs: dict[str, ComputeConfig]) -> dict | None:
    row = configs.get(view.stage or "")
    if row is not None:
        return compute_config_json(row)
    return {
        "stage": view.stage,
        "creation_timestamp": None,
        "user_id": None,
        "workload_spec": {
            "workload_size_id": view.compute.workload_size_id,
            "scale_to_zero_enabled": view.compute.scale_to_zero_enabled,
        },
    }


def endpoint_state(snapshot: Snapshot, model: str) -> tuple[str, str]:
    views = sorted(version_views(snapshot, model), key=lambda v: int(v.version), reverse=True)
    if snapshot.model_endpoint(model) is None or snapshot.is_stale(model):
        return VersionState.PENDING, "Reading the model's versions from the registry"
    if not views:
        return VersionState.READY, "Serving is enabled; no version is in Staging or Production yet"
    ready_routes = [
        f"{route} serves version {version}"
        for route, version in snapshot.model_routes(model).items()
        if (view := snapshot.view(model, version)) is not None and view.state == VersionState.READY
    ]
    if ready_routes:
        return VersionState.READY, "Ready: " + "; ".join(ready_routes)
    if all(v.state == VersionState.FAILED for v in views):
        return VersionState.FAILED, f"Version {views[0].version} failed: {views[0].message}"
    return VersionState.PENDING, "Waiting for a model version to be ready"


def endpoint_status(snapshot: Snapshot, model: str, configs: list[ComputeConfig]) -> dict:
    state, message = endpoint_state(snapshot, model)
    return {
        "registered_model_name": model,
        "state": ENDPOINT_STATE[state],
        "state_message": message,
        "compute_config": [compute_config_json(c) for c in configs if c.stage in SERVING_STAGES],
    }


def version_status(view: VersionView, configs: list[ComputeConfig]) -> dict:
    by_stage = {c.stage: c for c in configs}
    config = _config_for_view(view, by_stage)
    row = by_stage.get(view.stage or "")
    # A config stored after the last reconcile tick is pending too, though no tick has seen it yet.
    unseen = row is not None and row.generation != view.compute.generation
    if view.compute_pending or unseen:
        size = row.workload_size_id if row is not None else view.compute.workload_size_id
        update = {
            "state": "SERVICE_STATE_PENDING",
            "message": f"Applying compute config {size}: "
            f"{view.ready_replicas} of {view.target_replicas} replicas ready",
            "config": config,
        }
    else:
        update = {"state": "SERVICE_STATE_READY", "message": "Compute config applied", "config": config}
    return {
        "registered_model_name": view.model_name,
        "endpoint_version_name": view.version,
        "service_status": {"state": SERVICE_STATE[view.state], "message": view.message, "config": config},
        "config_update_status": update,
    }


def version_views(snapshot: Snapshot, model: str) -> list[VersionView]:
    """The versions the preview API serves for `model` (not those only serving endpoints serve)."""
    views = (v for (name, _), v in snapshot.views.items() if name == model and v.staged)
    return sorted(views, key=lambda v: int(v.version))


def staged_view(snapshot: Snapshot, model: str, version: str) -> VersionView | None:
    view = snapshot.view(model, version)
    return view if view is not None and view.staged else None
