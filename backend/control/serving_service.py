"""Changes to named serving endpoints (the GA API), shared by the API routes.

Every change is one transaction on the store, checked in full before anything is written; the
controller then rolls it out (see serving_endpoints.py). The store is read and written in a worker
thread (the `_`-prefixed methods), never on the event loop that the scoring path shares.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from rtserve.server.auth import Permission, Principal
from rtserve.server.control import endpoint_permissions
from rtserve.server.control.admission import Admission
from rtserve.server.control.controller import Controller
from rtserve.server.control.email_notifications import EmailNotifications, parse_email_notifications
from rtserve.server.control.endpoint_permissions import Grant, effective_permission
from rtserve.server.control.environment_vars import references
from rtserve.server.control.inference_tables import InferenceTables, parse_gateway_tables, parse_payload_table
from rtserve.server.control.placement import require_ray
from rtserve.server.control.rate_limits import RateLimit, parse_ai_gateway, parse_rate_limits
from rtserve.server.control.serving_config import (
    NAME_PATTERN,
    NAME_RULE,
    EndpointConfig,
    parse_config,
    parse_tags,
    replica_difference,
)
from rtserve.server.control.serving_endpoints import ServingEndpointState, from_row, pending_failed
from rtserve.server.errors import ApiError, invalid, not_found
from rtserve.server.registry import Registry
from rtserve.server.secret_store import SecretStore
from rtserve.server.store import repo
from rtserve.server.store.models import ServingEndpoint
from rtserve.server.validate import known_fields


def _now_ms() -> int:
    return int(time.time() * 1000)


class ServingEndpointService:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        registry: Registry,
        controller: Controller,
        admission: Admission,
        secrets: SecretStore,
    ) -> None:
        self.sessions = sessions
        self.secrets = secrets
        self.registry = registry
        self.controller = controller
        self.admission = admission  # its rate limit counts restart when an endpoint's limits change

    async def require(self, name: str) -> ServingEndpointState:
        return await asyncio.to_thread(self._require, name)

    def _require(self, name: str) -> ServingEndpointState:
        with self.sessions() as session:
            row = repo.get_serving_endpoint(session=session, name=name)
            if row is None:
                raise not_found(f"Serving endpoint '{name}' does not exist.")
            return from_row(row)

    async def list_all(self) -> list[ServingEndpointState]:
        return await asyncio.to_thread(self._list_all)

    def _list_all(self) -> list[ServingEndpointState]:
        with self.sessions() as session:
            return [from_row(row) for row in repo.list_serving_endpoints(session=session)]

    async def require_permission(
        self, name: str, principal: Principal, needed: Permission, action: str
    ) -> ServingEndpointState:
        """The endpoint, if `principal` holds `needed` on it (its token's own permission or a grant)."""
        return _permitted(await self.require(name), principal, needed, action)

    async def create(self, params: dict[str, Any], user: str) -> ServingEndpointState:
        name = params.get("name")
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            raise invalid(f"'name' must be {NAME_RULE}; got {name!r}.")
        known_fields(params, "", CREATE_FIELDS, REFUSED_CREATE_FIELDS)
        config = parse_config(params.get("config"), config_version=1)
        _same_name(params.get("config"), name)
        tags = parse_tags(params.get("tags"))
        description = params.get("description")
        if description is not None and not isinstance(description, str):
            raise invalid(f"'description' must be a string; got {description!r}.")
        route_optimized = params.get("route_optimized", False)
        if not isinstance(route_optimized, bool):
            raise invalid(f"'route_optimized' must be true or false; got {route_optimized!r}.")
        rate_limits = _limits_of_create(params)
        notifications = parse_email_notifications(params.get("email_notifications"))
        tables = _tables_of_create(params, name)
        if await asyncio.to_thread(self._exists, name):
            raise _already_exists(name)
        await self._check_registered(config)
        await self._check_environment(name, config)
        now = _now_ms()
        row = ServingEndpoint(
            name=name,
            id=uuid.uuid4().hex,
            creator=user,
            creation_timestamp=now,
            last_updated_timestamp=now,
            config=None,
            pending_config=json.dumps(config.to_stored()),
            pending_since=now,
            tags=json.dumps(_merge_tags([], tags, [])),
            # Like Databricks, the creator can manage what it created.
            access_control=json.dumps([Grant("user_name", user, Permission.CAN_MANAGE).to_stored()]),
            rate_limits=_stored_limits(rate_limits),
            description=description,
            route_optimized=route_optimized,
            email_notifications=json.dumps(notifications.to_stored()),
            inference_tables=json.dumps(tables.to_stored()),
        )
        await asyncio.to_thread(self._add, row)
        return await self._changed(name)

    def _add(self, row: ServingEndpoint) -> None:
        try:
            with self.sessions.begin() as session:
                repo.add_serving_endpoint(session=session, endpoint=row)
        except IntegrityError:  # created concurrently by another request
            raise _already_exists(row.name) from None

    async def update_config(self, name: str, params: dict[str, Any], principal: Principal) -> ServingEndpointState:
        current = await self.require_permission(name, principal, Permission.CAN_MANAGE, "updating its config")
        if current.pending is not None and not pending_failed(current, self.controller.snapshot.views):
            raise ApiError(
                "RESOURCE_CONFLICT",
                f"Serving endpoint '{name}' is being updated to config version {current.pending.config_version}. "
                "Wait until state.config_update is NOT_UPDATING (or UPDATE_FAILED), then update it again.",
                409,
            )
        versions = [c.config_version for c in (current.config, current.pending) if c is not None]
        config = parse_config(params, config_version=max(versions, default=0) + 1)
        _same_name(params, name)
        tables = current.inference_tables
        if isinstance(params, dict) and params.get("auto_capture_config") is not None:  # absent: unchanged
            auto_capture = parse_payload_table(params["auto_capture_config"], "auto_capture_config", name)
            tables = tables.with_auto_capture(auto_capture)
        await self._check_registered(config)
        await self._check_environment(name, config)
        await asyncio.to_thread(self._store_pending, name, current, config, tables)
        return await self._changed(name)

    def _store_pending(
        self, name: str, current: ServingEndpointState, config: EndpointConfig, tables: InferenceTables
    ) -> None:
        with self.sessions.begin() as session:
            row = repo.get_serving_endpoint(session=session, name=name)
            if row is None:
                raise not_found(f"Serving endpoint '{name}' does not exist.")
            if row.pending_config != current.stored_pending:  # another update got in first
                raise ApiError("RESOURCE_CONFLICT", f"Serving endpoint '{name}' was updated concurrently; retry.", 409)
            row.pending_config = json.dumps(config.to_stored())
            row.pending_since = row.last_updated_timestamp = _now_ms()
            # Logging follows at once, not at promotion: it is the endpoint's, whichever config answers.
            row.inference_tables = json.dumps(tables.to_stored())

    async def delete(self, name: str, principal: Principal) -> None:
        await self.require_permission(name, principal, Permission.CAN_MANAGE, "deleting it")
        await asyncio.to_thread(self._delete, name)
        await asyncio.to_thread(self.admission.forget, name)
        await self.controller.refresh_serving_endpoints()
        self.controller.nudge()

    def _delete(self, name: str) -> None:
        with self.sessions.begin() as session:
            if repo.get_serving_endpoint(session=session, name=name) is None:
                raise not_found(f"Serving endpoint '{name}' does not exist.")
            repo.delete_serving_endpoint(session=session, name=name)

    async def patch_tags(self, name: str, params: dict[str, Any], principal: Principal) -> list[dict[str, str]]:
        await self.require_permission(name, principal, Permission.CAN_MANAGE, "changing its tags")
        add = parse_tags(params.get("add_tags"), "add_tags")
        remove = params.get("delete_tags", [])
        if not isinstance(remove, list) or not all(isinstance(key, str) for key in remove):
            raise invalid("'delete_tags' must be a list of tag keys.")
        tags = await asyncio.to_thread(self._store_tags, name, add, remove)
        await self.controller.refresh_serving_endpoints()
        return tags

    def _store_tags(self, name: str, add: list[dict[str, str]], remove: list[str]) -> list[dict[str, str]]:
        with self.sessions.begin() as session:
            row = repo.get_serving_endpoint(session=session, name=name)
            if row is None:
                raise not_found(f"Serving endpoint '{name}' does not exist.")
            tags = _merge_tags(json.loads(row.tags or "[]"), add, remove)
            row.tags = json.dumps(tags)
        return tags

    async def set_rate_limits(
        self, name: str, limits: tuple[RateLimit, ...], principal: Principal
    ) -> tuple[RateLimit, ...]:
        """Replace the endpoint's rate limits (PUT .../rate-limits); they apply at once."""
        return (await self.set_ai_gateway(name, limits, None, principal)).rate_limits

    async def set_ai_gateway(
        self, name: str, limits: tuple[RateLimit, ...], gateway: dict[str, Any] | None, principal: Principal
    ) -> ServingEndpointState:
        """Replace the endpoint's rate limits and, given the `ai_gateway` object (PUT .../ai-gateway), its
        gateway tables (absent: off); they apply at once."""
        current = await self.require_permission(name, principal, Permission.CAN_MANAGE, "changing its AI gateway")
        tables = None
        if gateway is not None:
            tables = current.inference_tables.with_gateway(*parse_gateway_tables(gateway, name))
        await asyncio.to_thread(self._store_limits, name, limits, tables)
        await asyncio.to_thread(self.admission.forget, name)
        await self.controller.refresh_serving_endpoints()
        return self.controller.snapshot.serving_endpoints[name]

    def _store_limits(self, name: str, limits: tuple[RateLimit, ...], tables: InferenceTables | None) -> None:
        with self.sessions.begin() as session:
            row = repo.get_serving_endpoint(session=session, name=name)
            if row is None:
                raise not_found(f"Serving endpoint '{name}' does not exist.")
            row.rate_limits = _stored_limits(limits)
            if tables is not None:
                row.inference_tables = json.dumps(tables.to_stored())
            row.last_updated_timestamp = _now_ms()

    async def set_email_notifications(
        self, name: str, params: dict[str, Any], principal: Principal
    ) -> EmailNotifications:
        """Replace who is e-mailed when the endpoint's config updates finish (PATCH .../notifications)."""
        await self.require_permission(name, principal, Permission.CAN_MANAGE, "changing its notifications")
        known_fields(params, "", ("email_notifications",))
        notifications = parse_email_notifications(params.get("email_notifications"))
        await asyncio.to_thread(self._store_notifications, name, notifications)
        await self.controller.refresh_serving_endpoints()
        return notifications

    def _store_notifications(self, name: str, notifications: EmailNotifications) -> None:
        with self.sessions.begin() as session:
            row = repo.get_serving_endpoint(session=session, name=name)
            if row is None:
                raise not_found(f"Serving endpoint '{name}' does not exist.")
            row.email_notifications = json.dumps(notifications.to_stored())
            row.last_updated_timestamp = _now_ms()

    async def permissions(self, endpoint_id: str, principal: Principal) -> dict:
        endpoint, token_levels = await asyncio.to_thread(self._endpoint_and_levels, endpoint_id)
        _permitted(endpoint, principal, Permission.CAN_VIEW, "reading its permissions")
        return endpoint_permissions.permissions_response(endpoint_id, endpoint.grants, token_levels)

    async def permission_levels(self, endpoint_id: str, principal: Principal) -> dict:
        endpoint = await asyncio.to_thread(self._require_id, endpoint_id)
        _permitted(endpoint, principal, Permission.CAN_VIEW, "reading its permission levels")
        return endpoint_permissions.permission_levels_response()

    async def change_permissions(
        self, endpoint_id: str, params: dict[str, Any], principal: Principal, *, replace: bool
    ) -> dict:
        """PUT (`replace`: the list becomes exactly the given grants) or PATCH (the given grants are set)."""
        endpoint, token_levels = await asyncio.to_thread(self._endpoint_and_levels, endpoint_id)
        _permitted(endpoint, principal, Permission.CAN_MANAGE, "changing its permissions")
        grants = endpoint_permissions.parse_access_control_list(
            params.get("access_control_list", []), set(token_levels)
        )
        changed = await asyncio.to_thread(self._store_grants, endpoint_id, grants, replace)
        await self.controller.refresh_serving_endpoints()
        return endpoint_permissions.permissions_response(endpoint_id, changed, token_levels)

    def _store_grants(self, endpoint_id: str, grants: list[Grant], replace: bool) -> list[Grant]:
        with self.sessions.begin() as session:
            row = repo.get_serving_endpoint_by_id(session=session, endpoint_id=endpoint_id)
            if row is None:
                raise _id_not_found(endpoint_id)
            current = [Grant.from_stored(stored) for stored in json.loads(row.access_control or "[]")]
            changed = endpoint_permissions.merge([] if replace else current, grants)
            row.access_control = json.dumps([grant.to_stored() for grant in changed])
        return changed

    def _endpoint_and_levels(self, endpoint_id: str) -> tuple[ServingEndpointState, dict[str, Permission]]:
        return self._require_id(endpoint_id), self._token_levels()

    def _require_id(self, endpoint_id: str) -> ServingEndpointState:
        with self.sessions() as session:
            row = repo.get_serving_endpoint_by_id(session=session, endpoint_id=endpoint_id)
            if row is None:
                raise _id_not_found(endpoint_id)
            return from_row(row)

    def _token_levels(self) -> dict[str, Permission]:
        """Each active token's name with the highest permission a token of that name holds."""
        levels: dict[str, Permission] = {}
        with self.sessions() as session:
            for token in repo.list_active_tokens(session=session):
                level = Permission[token.permission]
                levels[token.name] = max(level, levels.get(token.name, level))
        return levels

    def _exists(self, name: str) -> bool:
        with self.sessions() as session:
            return repo.get_serving_endpoint(session=session, name=name) is not None

    async def _check_registered(self, config: EndpointConfig) -> None:
        """Every served entity must name a registered model version (a 404 says which one does not)."""
        for entity in config.served_entities:
            try:
                await asyncio.to_thread(self.registry.get_version, entity.entity_name, entity.entity_version)
            except ApiError as exc:
                if exc.status != 404:
                    raise
                raise not_found(
                    f"Served entity '{entity.name}': version {entity.entity_version} of registered model "
                    f"'{entity.entity_name}' does not exist. Register it first, or fix entity_name/entity_version."
                ) from None

    async def _check_environment(self, name: str, config: EndpointConfig) -> None:
        """Placement only on the Ray engine; every secret reference names an existing secret (a 400 names the
        one that does not); no other endpoint serves one of the config's versions with other environment_vars
        or placement (one set of replicas each)."""
        placed = next((i for i, e in enumerate(config.served_entities) if e.placement), None)
        if placed is not None:
            require_ray(self.controller.settings.engine, f"config.served_entities[{placed}].placement")
        for entity in config.served_entities:
            for scope, key in references(entity.environment_vars):
                if not await asyncio.to_thread(self.secrets.exists, scope, key):
                    raise invalid(
                        f"Served entity '{entity.name}': environment_vars refer to secret '{key}' of scope '{scope}', "
                        f"which does not exist. Create it first (rtserve secrets put {scope} {key})."
                    )
        for other in await self.list_all():
            if other.name == name:
                continue
            for theirs in other.entities():
                ours = next((e for e in config.served_entities if e.key == theirs.key), None)
                if ours is not None and (differs := replica_difference(ours, theirs)) is not None:
                    raise invalid(
                        f"Served entity '{ours.name}': serving endpoint '{other.name}' serves version "
                        f"{ours.entity_version} of '{ours.entity_name}' with other {differs}; a version runs "
                        f"one set of replicas, so give it the same {differs} (or serve another version)."
                    )

    async def _changed(self, name: str) -> ServingEndpointState:
        await self.controller.refresh_serving_endpoints()
        self.controller.nudge()
        return self.controller.snapshot.serving_endpoints[name]


def _already_exists(name: str) -> ApiError:
    return ApiError(
        "RESOURCE_ALREADY_EXISTS",
        f"Serving endpoint '{name}' already exists. Update it with PUT /api/2.0/serving-endpoints/{name}/config.",
    )


def _permitted(
    endpoint: ServingEndpointState, principal: Principal, needed: Permission, action: str
) -> ServingEndpointState:
    held = effective_permission(principal, endpoint.grants)
    endpoint_permissions.check(f"serving endpoint '{endpoint.name}'", endpoint.id, held, needed, action)
    return endpoint


CREATE_FIELDS = (
    "name",
    "config",
    "tags",
    "rate_limits",
    "ai_gateway",
    "description",
    "route_optimized",
    "email_notifications",
)
REFUSED_CREATE_FIELDS = {
    "budget_policy_id": "rtserve has no budget policies.",
    "telemetry_config": "rtserve exports its metrics at GET /metrics (Prometheus) only.",
}


def _same_name(config: Any, name: str) -> None:
    """A config's own `name` (the SDK's EndpointCoreConfigInput sends it) must be the endpoint's."""
    given = config.get("name") if isinstance(config, dict) else None
    if given is not None and given != name:
        raise invalid(f"'config.name' is the endpoint's name, '{name}'; got {given!r}.")


def _limits_of_create(params: dict[str, Any]) -> tuple[RateLimit, ...]:
    """Rate limits given at creation, as `rate_limits` (legacy) or `ai_gateway.rate_limits`, not both."""
    legacy, gateway = params.get("rate_limits"), params.get("ai_gateway")
    if legacy is not None and gateway is not None and (not isinstance(gateway, dict) or "rate_limits" in gateway):
        raise invalid("Give rate limits as 'rate_limits' or as 'ai_gateway.rate_limits', not both.")
    return parse_rate_limits(legacy) if legacy is not None else parse_ai_gateway(gateway)


def _tables_of_create(params: dict[str, Any], name: str) -> InferenceTables:
    config = params.get("config")
    auto_capture = config.get("auto_capture_config") if isinstance(config, dict) else None
    tables = InferenceTables().with_auto_capture(parse_payload_table(auto_capture, "config.auto_capture_config", name))
    return tables.with_gateway(*parse_gateway_tables(params.get("ai_gateway"), name))


def _stored_limits(limits: tuple[RateLimit, ...]) -> str:
    return json.dumps([limit.to_stored() for limit in limits])


def _id_not_found(endpoint_id: str) -> ApiError:
    return not_found(
        f"No serving endpoint has the id '{endpoint_id}'. The permissions API takes an endpoint's id "
        "(the `id` of GET /api/2.0/serving-endpoints/{name}), not its name."
    )


def _merge_tags(tags: list[dict[str, str]], add: list[dict[str, str]], remove: list[str]) -> list[dict[str, str]]:
    by_key = {tag["key"]: tag for tag in tags}
    for tag in add:
        by_key[tag["key"]] = tag
    for key in remove:
        by_key.pop(key, None)
    return sorted(by_key.values(), key=lambda tag: tag["key"])
