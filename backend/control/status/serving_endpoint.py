"""The GA API's status objects (a serving endpoint, its configs and served entities): the stored config
merged with what the controller observed, from the published snapshot."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rtserve.server.control.inference_tables import auto_capture_output, gateway_output
from rtserve.server.control.reconciler import VersionState, VersionView
from rtserve.server.control.serving_config import EndpointConfig, ServedEntity
from rtserve.server.control.serving_endpoints import ServingEndpointState, VersionKey, pending_failed

_DEPLOYMENT = {
    VersionState.READY: "DEPLOYMENT_READY",
    VersionState.PENDING: "DEPLOYMENT_CREATING",
    VersionState.FAILED: "DEPLOYMENT_FAILED",
}


def endpoint_state(endpoint: ServingEndpointState, views: Mapping[VersionKey, VersionView]) -> dict[str, str]:
    config = endpoint.config
    ready = config is not None and all(
        (view := views.get(entity.key)) is not None and view.state == VersionState.READY
        for entity in config.served_entities
    )
    if endpoint.pending is None:
        update = "NOT_UPDATING"
    elif pending_failed(endpoint, views):
        update = "UPDATE_FAILED"
    else:
        update = "IN_PROGRESS"
    return {"ready": "READY" if ready else "NOT_READY", "config_update": update}


def endpoint_detail(
    endpoint: ServingEndpointState, views: Mapping[VersionKey, VersionView], base_url: str
) -> dict[str, Any]:
    detail = _common(endpoint, views)
    detail["endpoint_url"] = f"{base_url.rstrip('/')}/serving-endpoints/{endpoint.name}/invocations"
    if endpoint.config is not None:
        detail["config"] = _config(endpoint.config, endpoint, views)
    if endpoint.pending is not None:
        pending = _config(endpoint.pending, endpoint, views)
        pending["start_time"] = endpoint.pending_since
        detail["pending_config"] = pending
    gateway = {
        **({"rate_limits": [limit.to_stored() for limit in endpoint.rate_limits]} if endpoint.rate_limits else {}),
        **gateway_output(endpoint.inference_tables),
    }
    if gateway:
        detail["ai_gateway"] = gateway
    if notifications := endpoint.email_notifications.to_stored():  # the detail only: not in the SDK's list item
        detail["email_notifications"] = notifications
    return detail


def endpoint_summary(endpoint: ServingEndpointState, views: Mapping[VersionKey, VersionView]) -> dict[str, Any]:
    """The list form: the served entities by name, without their state."""
    summary = _common(endpoint, views)
    config = endpoint.config or endpoint.pending
    if config is not None:
        summary["config"] = {
            "served_entities": [
                {"name": e.name, "entity_name": e.entity_name, "entity_version": e.entity_version}
                for e in config.served_entities
            ],
            "served_models": [
                {"name": e.name, "model_name": e.entity_name, "model_version": e.entity_version}
                for e in config.served_entities
            ],
        }
    return summary


def _common(endpoint: ServingEndpointState, views: Mapping[VersionKey, VersionView]) -> dict[str, Any]:
    return {
        "name": endpoint.name,
        "id": endpoint.id,
        "creator": endpoint.creator,
        "creation_timestamp": endpoint.creation_timestamp,
        "last_updated_timestamp": endpoint.last_updated_timestamp,
        "state": endpoint_state(endpoint, views),
        "tags": endpoint.tags,
        "task": "",
        **({"description": endpoint.description} if endpoint.description else {}),
        **({"route_optimized": True} if endpoint.route_optimized else {}),
    }


def _config(config: EndpointConfig, endpoint: ServingEndpointState, views: Mapping[VersionKey, VersionView]) -> dict:
    entities = [_entity(e, endpoint, views.get(e.key)) for e in config.served_entities]
    auto_capture = endpoint.inference_tables.auto_capture
    return {
        **({"auto_capture_config": auto_capture_output(auto_capture)} if auto_capture else {}),
        "config_version": config.config_version,
        "served_entities": entities,
        "served_models": [_legacy(entity) for entity in entities],
        "traffic_config": {
            "routes": [
                {"served_model_name": name, "served_entity_name": name, "traffic_percentage": share}
                for name, share in config.traffic
            ]
        },
    }


def _entity(entity: ServedEntity, endpoint: ServingEndpointState, view: VersionView | None) -> dict[str, Any]:
    if view is None:
        deployment, message = "DEPLOYMENT_CREATING", "Waiting for the controller to plan this version"
    else:
        deployment, message = _DEPLOYMENT.get(view.state, "DEPLOYMENT_CREATING"), view.message
    return {
        "name": entity.name,
        "entity_name": entity.entity_name,
        "entity_version": entity.entity_version,
        **_size(entity),
        "workload_type": "CPU",
        "scale_to_zero_enabled": entity.scale_to_zero_enabled,
        **({"environment_policy": entity.environment_policy} if entity.environment_policy else {}),
        **({"placement": entity.placement.to_wire()} if entity.placement else {}),
        # As configured: a secret shows as its reference, never its value.
        **({"environment_vars": dict(entity.environment_vars)} if entity.environment_vars else {}),
        "creator": endpoint.creator,
        "creation_timestamp": endpoint.creation_timestamp,
        "state": {"deployment": deployment, "deployment_state_message": message},
    }


def _size(entity: ServedEntity) -> dict[str, Any]:
    """Its workload size, or the provisioned concurrency given instead (Databricks answers the one set)."""
    if entity.provisioned is None:
        return {"workload_size": entity.workload_size}
    low, high = entity.provisioned
    return {"min_provisioned_concurrency": low, "max_provisioned_concurrency": high}


def _legacy(entity: dict[str, Any]) -> dict[str, Any]:
    """The `served_models` form of a served entity (model_name, model_version)."""
    legacy = {key: value for key, value in entity.items() if key not in ("entity_name", "entity_version")}
    return {**legacy, "model_name": entity["entity_name"], "model_version": entity["entity_version"]}
