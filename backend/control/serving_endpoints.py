"""Named serving endpoints as the controller sees them: stored desired state, and what follows from it.

An endpoint serves traffic with its `config`. An update is stored as `pending_config` and rolled
out next to it: the versions of both run, traffic stays on `config`, and once every served entity
of the pending config is ready, the pending config becomes the config (zero downtime). Before an
endpoint's first config is ready, requests go to the pending one and wait for its replicas.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from rtserve.server.control.email_notifications import EmailNotifications
from rtserve.server.control.endpoint import Endpoint, serving_endpoint
from rtserve.server.control.endpoint_permissions import Grant
from rtserve.server.control.inference_tables import InferenceTables
from rtserve.server.control.rate_limits import RateLimit
from rtserve.server.control.reconciler import PendingConfig, VersionState, VersionView
from rtserve.server.control.serving_config import EndpointConfig, ServedEntity
from rtserve.server.control.status import version_state
from rtserve.server.control.workloads import Compute, combine
from rtserve.server.store import repo
from rtserve.server.store.models import ServingEndpoint

VersionKey = tuple[str, str]


@dataclass(frozen=True)
class ServingEndpointState:
    name: str
    id: str
    creator: str
    creation_timestamp: int
    last_updated_timestamp: int
    config: EndpointConfig | None
    pending: EndpointConfig | None
    pending_since: int | None
    tags: list[dict[str, str]] = field(default_factory=list)
    stored_pending: str | None = None  # the pending config's stored text, to promote exactly what was read
    grants: tuple[Grant, ...] = ()  # its access control list (see endpoint_permissions.py)
    rate_limits: tuple[RateLimit, ...] = ()
    description: str | None = None
    route_optimized: bool = False
    email_notifications: EmailNotifications = EmailNotifications()
    inference_tables: InferenceTables = InferenceTables()

    @property
    def live_config(self) -> EndpointConfig | None:
        """The config requests go to: the config, or before it exists the pending one."""
        return self.config or self.pending

    def compiled(self) -> Endpoint:
        """This endpoint in the one internal model (control/endpoint.py) that scoring and admission read."""
        return serving_endpoint(self.name, self.id, self.live_config, self.pending, self.grants, self.rate_limits)

    def served_entity(self, name: str) -> ServedEntity | None:
        """A served entity of the config or of the pending config, by name."""
        for config in (self.config, self.pending):
            entity = config.entity(name) if config else None
            if entity is not None:
                return entity
        return None

    def entities(self) -> list[ServedEntity]:
        return [entity for config in (self.config, self.pending) if config for entity in config.served_entities]


def from_row(row: ServingEndpoint) -> ServingEndpointState:
    return ServingEndpointState(
        name=row.name,
        id=row.id,
        creator=row.creator,
        creation_timestamp=row.creation_timestamp,
        last_updated_timestamp=row.last_updated_timestamp,
        config=EndpointConfig.from_stored(json.loads(row.config)) if row.config else None,
        pending=EndpointConfig.from_stored(json.loads(row.pending_config)) if row.pending_config else None,
        pending_since=row.pending_since,
        tags=json.loads(row.tags or "[]"),
        stored_pending=row.pending_config,
        grants=tuple(Grant.from_stored(stored) for stored in json.loads(row.access_control or "[]")),
        rate_limits=tuple(RateLimit.from_stored(stored) for stored in json.loads(row.rate_limits or "[]")),
        description=row.description,
        route_optimized=bool(row.route_optimized),
        email_notifications=EmailNotifications.from_stored(json.loads(row.email_notifications or "{}")),
        inference_tables=InferenceTables.from_stored(json.loads(row.inference_tables or "{}")),
    )


def load_all(sessions: sessionmaker[Session]) -> dict[str, ServingEndpointState]:
    with sessions() as session:
        return {row.name: from_row(row) for row in repo.list_serving_endpoints(session=session)}


def pinned_versions(endpoints: Iterable[ServingEndpointState]) -> dict[VersionKey, Compute]:
    """Every version some endpoint's config or pending config serves, with the compute it needs."""
    pinned: dict[VersionKey, Compute] = {}
    for endpoint in endpoints:
        for entity in endpoint.entities():
            compute = entity.compute
            pinned[entity.key] = combine(pinned[entity.key], compute) if entity.key in pinned else compute
    return pinned


def environment_policy(endpoints: Iterable[ServingEndpointState], key: VersionKey) -> str | None:
    """The environment policy served entities ask for the version `key`, None if none does; when several
    differ, the one that isolates most (`isolated`, then `auto`, then `local`): the version runs once."""
    asked = {e.environment_policy for endpoint in endpoints for e in endpoint.entities() if e.key == key}
    return next((policy for policy in ("isolated", "auto", "local") if policy in asked), None)


def pending_configs(endpoints: Iterable[ServingEndpointState]) -> list[PendingConfig]:
    """The config updates being rolled out, for the reconciler to promote once their versions are ready."""
    return [
        PendingConfig(endpoint.name, endpoint.stored_pending, tuple(e.key for e in endpoint.pending.served_entities))
        for endpoint in endpoints
        if endpoint.pending is not None and endpoint.stored_pending is not None
    ]


def pending_failed(endpoint: ServingEndpointState, views: Mapping[VersionKey, VersionView]) -> bool:
    if endpoint.pending is None:
        return False
    return any(version_state(views.get(e.key)) == VersionState.FAILED for e in endpoint.pending.served_entities)


def promote(sessions: sessionmaker[Session], endpoint: ServingEndpointState, now_ms: int, stored: str) -> bool:
    """Make the pending config the config, unless it is no longer exactly `stored`. True if promoted.

    The row is locked while it is checked and changed, so a promotion decided twice (by two instances
    leading for a moment, or on a stale read) applies once.
    """
    with sessions.begin() as session:
        row = repo.get_serving_endpoint(session=session, name=endpoint.name, for_update=True)
        if row is None or row.pending_config is None or row.pending_config != stored:
            return False
        row.config = row.pending_config
        row.pending_config = None
        row.pending_since = None
        row.last_updated_timestamp = now_ms
    return True
