"""The pure side of `rtserve_serving_endpoint`: declared defaults, structural checks, the request body,
the state read back from an endpoint's detail, and how far a rollout has come. No I/O.

Wire form (GET /api/2.0/serving-endpoints/{name}): `config` is what serves traffic; `pending_config`
is an update rolling out next to it (config_update IN_PROGRESS) or one that failed (UPDATE_FAILED).
Before the first config is ready an endpoint has only a pending config.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tf.iface import State
from tf.types import Unknown
from tf.utils import Diagnostics

from rtserve import spec
from rtserve.provider.resources.compute import (
    PLACEMENT_FIELDS,
    fill_blocks,
    placement_body,
    placement_from_answer,
    reported_map,
    with_compute_defaults,
)
from rtserve.provider.resources.email_notifications import notifications_from_detail
from rtserve.provider.resources.inference_tables import request_table, tables_from_detail
from rtserve.provider.resources.rate_limits import limits_from_detail
from rtserve.provider.waiter import Progress
from rtserve.spec import DEFAULT_SCALE_TO_ZERO, DEFAULT_WORKLOAD_SIZE, TRAFFIC_TOTAL, SpecError

READY = "READY"
NOT_UPDATING = "NOT_UPDATING"
IN_PROGRESS = "IN_PROGRESS"
UPDATE_FAILED = "UPDATE_FAILED"
DEPLOYMENT_READY = "DEPLOYMENT_READY"
DEPLOYMENT_FAILED = "DEPLOYMENT_FAILED"
PROVISIONED_FIELDS = ("min_provisioned_concurrency", "max_provisioned_concurrency")
ENTITY_FIELDS = (
    "name",
    "entity_name",
    "entity_version",
    "workload_size",
    "scale_to_zero_enabled",
    *PROVISIONED_FIELDS,
    "environment_policy",
    "environment_vars",
    *PLACEMENT_FIELDS,
)


# -- plan: declared defaults -----------------------------------------------------------------------
def default_entity_name(entity: Mapping[str, Any]) -> Any:
    """The backend's default served entity name, `<entity_name>-<entity_version>`; Unknown until both are known."""
    model, version = entity.get("entity_name"), entity.get("entity_version")
    if isinstance(model, str) and isinstance(version, str):
        return f"{model}-{version}"
    return Unknown


def entities_with_defaults(entities: Any, configured: Any) -> Any:
    """Fill each served entity's unset name, workload_size and scale_to_zero_enabled as the backend would.

    `configured` tells which values the user set: Terraform carries a computed value over from the
    prior state, so without it a changed entity_version would keep the old default name.
    """
    return fill_blocks(entities, configured, _entity_with_defaults)


def _entity_with_defaults(entity: dict, configured: Mapping[str, Any]) -> dict:
    filled = dict(entity)
    if configured.get("name") is None:
        filled["name"] = default_entity_name(filled)
    filled = with_compute_defaults(filled, configured)
    if any(configured.get(field) is not None for field in PROVISIONED_FIELDS):
        filled["workload_size"] = None  # provisioned concurrency replaces the size: the backend answers none
    return filled


def default_traffic(entities: Any) -> Any:
    """The backend's traffic_config when none is given: all of it to the only served entity.

    With several served entities the backend requires traffic_config (validate_config says so first).
    """
    if isinstance(entities, list) and len(entities) == 1 and isinstance(entities[0], dict):
        name = entities[0].get("name")
        if isinstance(name, str):
            return {"routes": [{"served_model_name": name, "traffic_percentage": TRAFFIC_TOTAL}]}
    return Unknown


def config_of(state: Mapping[str, Any]) -> tuple[Any, Any, Any]:
    """What a config update changes: the served entities, the traffic split and the legacy inference table."""
    entities = state.get("served_entities")
    if isinstance(entities, list):
        entities = [{k: e.get(k) for k in ENTITY_FIELDS} if isinstance(e, dict) else e for e in entities]
    return entities, state.get("traffic_config"), state.get("auto_capture_config")


def tags_of(state: Mapping[str, Any]) -> dict[str, str]:
    tags = state.get("tags")
    return dict(tags) if isinstance(tags, dict) else {}


# -- validation ------------------------------------------------------------------------------------
def validate_config(diags: Diagnostics, config: Mapping[str, Any]) -> None:
    """Structure the plan depends on: unique served entity names, and routes that add up.

    Values (workload sizes, version numbers, the endpoint name's spelling) are the backend's to judge.
    Unknown values are skipped: Terraform validates again once they are known.
    """
    names = _entity_names(diags, config.get("served_entities"))
    traffic = config.get("traffic_config")
    entities = config.get("served_entities")
    _check_provisioned(diags, entities)
    if traffic is None:
        if isinstance(entities, list) and len(entities) > 1:
            diags.add_error(
                "Missing traffic_config",
                f"This endpoint serves {len(entities)} entities: give traffic_config = {{ routes = [...] }} "
                f"with each served entity's traffic_percentage, summing to {TRAFFIC_TOTAL}.",
                ["traffic_config"],
            )
        return
    routes = traffic.get("routes") if isinstance(traffic, dict) else Unknown
    if isinstance(routes, list):
        _check_routes(diags, routes, names)


def _check_provisioned(diags: Diagnostics, entities: Any) -> None:
    """Provisioned concurrency is both bounds or neither, and replaces workload_size (the values are the backend's)."""
    for index, entity in enumerate(entities if isinstance(entities, list) else []):
        if not isinstance(entity, dict):
            continue
        given = [field for field in PROVISIONED_FIELDS if entity.get(field) is not None]
        path = ["served_entities", (index,)]
        if len(given) == 1:
            missing = next(field for field in PROVISIONED_FIELDS if field not in given)
            diags.add_error(
                "Incomplete provisioned concurrency",
                f"Give {missing} too: provisioned concurrency is a range (both bounds, multiples of 4).",
                [*path, missing],
            )
        if given and entity.get("workload_size") is not None:
            diags.add_error(
                "workload_size with provisioned concurrency",
                "A served entity takes workload_size or min/max_provisioned_concurrency, not both: remove one.",
                [*path, "workload_size"],
            )


def _entity_names(diags: Diagnostics, entities: Any) -> list[str] | None:
    """The served entities' effective names; None when one of them is not known yet."""
    if not isinstance(entities, list):
        return None
    names: list[str] = []
    complete = True
    for index, entity in enumerate(entities):
        if not isinstance(entity, dict):
            complete = False
            continue
        name = entity.get("name") if entity.get("name") is not None else default_entity_name(entity)
        if not isinstance(name, str):
            complete = False
            continue
        if name in names:
            diags.add_error(
                "Duplicate served entity name",
                f"Two served_entities are named {name!r} (a served entity without `name` is named "
                "<entity_name>-<entity_version>). Give each one a distinct `name`.",
                ["served_entities", (index,), "name"],
            )
        names.append(name)
    return names if complete else None


def _check_routes(diags: Diagnostics, routes: list, names: list[str] | None) -> None:
    path = ["traffic_config", "routes"]
    if not routes:
        diags.add_error("Empty traffic_config", "traffic_config.routes needs at least one route.", path)
        return
    seen: set[str] = set()
    shares: list[int | float] = []
    all_known = True
    for route in routes:
        if not isinstance(route, dict):
            all_known = False
            continue
        served, share = route.get("served_model_name"), route.get("traffic_percentage")
        if isinstance(served, str):
            if names is not None and served not in names:
                diags.add_error(
                    "Route to an unknown served entity",
                    f"traffic_config routes {served!r}, which is not a served entity of this endpoint "
                    f"({', '.join(names)}). Name one of those (a served entity without `name` is named "
                    "<entity_name>-<entity_version>).",
                    path,
                )
            if served in seen:
                diags.add_error(
                    "Duplicate route", f"traffic_config has more than one route for {served!r}; give it one.", path
                )
            seen.add(served)
        if isinstance(share, int | float) and not isinstance(share, bool):
            # A Terraform number arrives as a float; a whole one is the integer the request will carry.
            share = int(share) if isinstance(share, float) and share.is_integer() else share
            try:
                spec.check_traffic_percentage(share)
            except SpecError as error:
                diags.add_error(
                    "Invalid traffic_percentage",
                    f"traffic_percentage must be {error.rule}; got {share!r} for {served!r}.",
                    path,
                )
            shares.append(share)
        else:
            all_known = False
    if all_known:
        try:
            spec.check_traffic_total(shares)
        except SpecError as error:
            diags.add_error(f"Traffic does not add up to {TRAFFIC_TOTAL}", str(error), path)


# -- the request -----------------------------------------------------------------------------------
def request_config(state: Mapping[str, Any]) -> dict[str, Any]:
    """The `config` body of a create or an update, from a planned state."""
    body: dict[str, Any] = {"served_entities": [_request_entity(e) for e in state["served_entities"]]}
    traffic = state.get("traffic_config")
    if isinstance(traffic, dict):
        body["traffic_config"] = {
            "routes": [
                {"served_model_name": r["served_model_name"], "traffic_percentage": int(r["traffic_percentage"])}
                for r in traffic["routes"]
            ]
        }
    if (capture := request_table(state.get("auto_capture_config"))) is not None:
        body["auto_capture_config"] = capture
    return body


def _request_entity(entity: Mapping[str, Any]) -> dict[str, Any]:
    body = {k: entity[k] for k in ENTITY_FIELDS if entity.get(k) is not None and k not in PLACEMENT_FIELDS}
    for field in PROVISIONED_FIELDS:  # Terraform numbers may arrive as floats
        if field in body:
            body[field] = int(body[field])
    if placement := placement_body(entity):
        body["placement"] = placement
    return body


def tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"key": key, "value": value} for key, value in sorted(tags.items())]


def tag_changes(before: Mapping[str, str], after: Mapping[str, str]) -> tuple[list[dict[str, str]], list[str]]:
    """What PATCH /tags needs: the tags to add or overwrite, and the keys to delete."""
    add = {key: value for key, value in after.items() if before.get(key) != value}
    return tag_list(add), sorted(key for key in before if key not in after)


# -- the state read back ---------------------------------------------------------------------------
def observed_config(detail: Mapping[str, Any]) -> dict[str, Any]:
    """The config the state describes: while an update rolls out, the one it is becoming (the pending
    config); after a failed update, the one still serving, so the plan shows the change again."""
    state = detail.get("state") or {}
    pending, config = detail.get("pending_config"), detail.get("config")
    if pending and (state.get("config_update") == IN_PROGRESS or not config):
        return pending
    return config or {}


def state_from_detail(base: State, detail: Mapping[str, Any], endpoint_url: str) -> State:
    """`base` (the inputs) completed with what the backend reports.

    Version numbers keep the spelling of `base` when they mean the same number ("01" and "1"), so a
    configuration never differs from its own result.
    """
    config = observed_config(detail)
    prior = base.get("served_entities")
    prior_entities = prior if isinstance(prior, list) else []
    entities = []
    for index, reported in enumerate(config.get("served_entities") or []):
        version = str(reported.get("entity_version", ""))
        before = prior_entities[index] if index < len(prior_entities) else None
        if isinstance(before, dict) and _same_number(before.get("entity_version"), version):
            version = before["entity_version"]
        entities.append(
            {
                "name": reported.get("name"),
                "entity_name": reported.get("entity_name"),
                "entity_version": version,
                **_reported_size(reported),
                "scale_to_zero_enabled": bool(reported.get("scale_to_zero_enabled", DEFAULT_SCALE_TO_ZERO)),
                "environment_policy": reported.get("environment_policy"),  # answered only when set
                "environment_vars": reported_map(reported.get("environment_vars"), before, "environment_vars"),
                **placement_from_answer(reported, before),
            }
        )
    routes = ((config.get("traffic_config") or {}).get("routes")) or []
    tags = {str(t["key"]): str(t.get("value") or "") for t in detail.get("tags") or [] if "key" in t}
    state = detail.get("state") or {}
    return {
        **base,
        "id": detail.get("name", base.get("name")),
        "name": detail.get("name", base.get("name")),
        "served_entities": entities,
        "traffic_config": {
            "routes": [
                {"served_model_name": r.get("served_model_name"), "traffic_percentage": r.get("traffic_percentage")}
                for r in routes
            ]
        },
        # An endpoint without tags reads as the configuration wrote it: null or {}.
        "tags": tags if tags or isinstance(base.get("tags"), dict) else None,
        "rate_limits": limits_from_detail(detail),
        "description": detail.get("description"),
        "route_optimized": bool(detail.get("route_optimized", False)),
        "email_notifications": notifications_from_detail(base, detail),
        **tables_from_detail(base, detail),
        "endpoint_id": detail.get("id"),
        "endpoint_url": endpoint_url,
        "config_version": config.get("config_version"),
        "state_ready": state.get("ready"),
        "state_config_update": state.get("config_update"),
    }


def _reported_size(reported: Mapping[str, Any]) -> dict[str, Any]:
    """The workload size, or the provisioned concurrency the backend answers instead of one."""
    if any(reported.get(field) is not None for field in PROVISIONED_FIELDS):
        return {"workload_size": None, **{field: reported.get(field) for field in PROVISIONED_FIELDS}}
    return {"workload_size": reported.get("workload_size", DEFAULT_WORKLOAD_SIZE), **dict.fromkeys(PROVISIONED_FIELDS)}


def _same_number(a: Any, b: str) -> bool:
    return isinstance(a, str) and a.isdigit() and b.isdigit() and int(a) == int(b)


# -- waiting ---------------------------------------------------------------------------------------
def rollout_progress(detail: Mapping[str, Any], config_version: int | None) -> Progress:
    """Done when the endpoint is READY, NOT_UPDATING, and serves `config_version` (or a later one).

    Fails as soon as a served entity of the config being rolled out is DEPLOYMENT_FAILED, or the
    update is UPDATE_FAILED, with the backend's deployment_state_message.
    """
    state = detail.get("state") or {}
    ready, update = state.get("ready", "?"), state.get("config_update", "?")
    target = detail.get("pending_config") or detail.get("config") or {}
    entities = target.get("served_entities") or []
    failed = [e for e in entities if (e.get("state") or {}).get("deployment") == DEPLOYMENT_FAILED]
    if failed or update == UPDATE_FAILED:
        reasons = [_entity_status(e) for e in failed] or [f"config_update is {UPDATE_FAILED}"]
        return Progress(failure="; ".join(reasons))
    serving_version = (detail.get("config") or {}).get("config_version") or 0
    done = ready == READY and update == NOT_UPDATING and serving_version >= (config_version or 0)
    waiting = [_entity_status(e) for e in entities if (e.get("state") or {}).get("deployment") != DEPLOYMENT_READY]
    return Progress(done=done, message="; ".join([f"ready={ready}, config_update={update}", *waiting]))


def settled_progress(detail: Mapping[str, Any]) -> Progress:
    """Done when no config update is IN_PROGRESS (another change's update has finished, either way)."""
    update = (detail.get("state") or {}).get("config_update", "?")
    version = (detail.get("pending_config") or {}).get("config_version")
    return Progress(done=update != IN_PROGRESS, message=f"config_update={update} (config version {version})")


def _entity_status(entity: Mapping[str, Any]) -> str:
    state = entity.get("state") or {}
    where = f"served entity {entity.get('name')!r} ({entity.get('entity_name')} version {entity.get('entity_version')})"
    message = state.get("deployment_state_message") or ""
    return f"{where}: {state.get('deployment', '?')} {message}".strip()
