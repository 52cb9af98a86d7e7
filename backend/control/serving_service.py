"""Changes to named serving endpoints (the GA API), shared by the API routes.

Every change is one transaction on the store, checked in full before anything is written; the
controller then rolls it out (see serving_endpoints.py).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from backend.control.controller import Controller
from backend.control.serving_config import NAME_PATTERN, NAME_RULE, EndpointConfig, parse_config, parse_tags
from backend.control.serving_endpoints import ServingEndpointState, from_row, pending_failed
from backend.errors import ApiError, invalid, not_found
from backend.registry import Registry
from backend.store import repo
from backend.store.models import ServingEndpoint


def _now_ms() -> int:
    return int(time.time() * 1000)


class ServingEndpointService:
    def __init__(self, sessions: sessionmaker[Session], registry: Registry, controller: Controller) -> None:
        self.sessions = sessions
        self.registry = registry
        self.controller = controller

    def require(self, name: str) -> ServingEndpointState:
        with self.sessions() as session:
            row = repo.get_serving_endpoint(session=session, name=name)
            if row is None:
                raise not_found(f"Serving endpoint '{name}' does not exist.")
            return from_row(row)

    def list(self) -> list[ServingEndpointState]:
        with self.sessions() as session:
            return [from_row(row) for row in repo.list_serving_endpoints(session=session)]

    async def create(self, params: dict[str, Any], user: str) -> ServingEndpointState:
        name = params.get("name")
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            raise invalid(f"'name' must be {NAME_RULE}; got {name!r}.")
        config = parse_config(params.get("config"), config_version=1)
        tags = parse_tags(params.get("tags"))
        if self._exists(name):
            raise _already_exists(name)
        await self._check_registered(config)
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
        )
        try:
            with self.sessions.begin() as session:
                repo.add_serving_endpoint(session=session, endpoint=row)
        except IntegrityError:  # created concurrently by another request
            raise _already_exists(name) from None
        return self._changed(name)

    async def update_config(self, name: str, params: dict[str, Any]) -> ServingEndpointState:
        current = self.require(name)
        if current.pending is not None and not pending_failed(current, self.controller.views):
            raise ApiError(
                "RESOURCE_CONFLICT",
                f"Serving endpoint '{name}' is being updated to config version {current.pending.config_version}. "
                "Wait until state.config_update is NOT_UPDATING (or UPDATE_FAILED), then update it again.",
                409,
            )
        versions = [c.config_version for c in (current.config, current.pending) if c is not None]
        config = parse_config(params, config_version=max(versions, default=0) + 1)
        await self._check_registered(config)
        with self.sessions.begin() as session:
            row = repo.get_serving_endpoint(session=session, name=name)
            if row is None:
                raise not_found(f"Serving endpoint '{name}' does not exist.")
            if row.pending_config != current.stored_pending:  # another update got in first
                raise ApiError("RESOURCE_CONFLICT", f"Serving endpoint '{name}' was updated concurrently; retry.", 409)
            row.pending_config = json.dumps(config.to_stored())
            row.pending_since = row.last_updated_timestamp = _now_ms()
        return self._changed(name)

    def delete(self, name: str) -> None:
        with self.sessions.begin() as session:
            if repo.get_serving_endpoint(session=session, name=name) is None:
                raise not_found(f"Serving endpoint '{name}' does not exist.")
            repo.delete_serving_endpoint(session=session, name=name)
        self.controller.refresh_serving()
        self.controller.nudge()

    def patch_tags(self, name: str, params: dict[str, Any]) -> list[dict[str, str]]:
        add = parse_tags(params.get("add_tags"), "add_tags")
        remove = params.get("delete_tags", [])
        if not isinstance(remove, list) or not all(isinstance(key, str) for key in remove):
            raise invalid("'delete_tags' must be a list of tag keys.")
        with self.sessions.begin() as session:
            row = repo.get_serving_endpoint(session=session, name=name)
            if row is None:
                raise not_found(f"Serving endpoint '{name}' does not exist.")
            tags = _merge_tags(json.loads(row.tags or "[]"), add, remove)
            row.tags = json.dumps(tags)
        self.controller.refresh_serving()
        return tags

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

    def _changed(self, name: str) -> ServingEndpointState:
        self.controller.refresh_serving()
        self.controller.nudge()
        return self.controller.serving[name]


def _already_exists(name: str) -> ApiError:
    return ApiError(
        "RESOURCE_ALREADY_EXISTS",
        f"Serving endpoint '{name}' already exists. Update it with PUT /api/2.0/serving-endpoints/{name}/config.",
    )


def _merge_tags(tags: list[dict[str, str]], add: list[dict[str, str]], remove: list[str]) -> list[dict[str, str]]:
    by_key = {tag["key"]: tag for tag in tags}
    for tag in add:
        by_key[tag["key"]] = tag
    for key in remove:
        by_key.pop(key, None)
    return sorted(by_key.values(), key=lambda tag: tag["key"])
