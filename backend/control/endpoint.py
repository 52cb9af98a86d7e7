"""The one internal endpoint model that both APIs compile into (docs/concepts.md names each word).

A *model endpoint* (the preview API, seed 000: a registered model with serving enabled) and a
*serving endpoint* (the GA API, seed 002: a name with a config of served entities) both become an
`Endpoint`: named *routes*, each sending requests to one or more *destinations* (a model version
with its compute) by weight. The scoring path, admission (token permission, grants, rate limits),
the status builders and the UI's query panel read this one model; they never ask which API made it.

Pure: no I/O. The controller compiles the endpoints once per tick into its published snapshot.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from rtserve.server.auth import Permission, Principal
from rtserve.server.control.endpoint_permissions import Grant, effective_permission
from rtserve.server.control.rate_limits import RateLimit
from rtserve.server.control.serving_config import EndpointConfig, ServedEntity
from rtserve.server.control.workloads import Compute

VersionKey = tuple[str, str]
# A serving endpoint's own route: its traffic split, what /serving-endpoints/{name}/invocations scores on.
TRAFFIC_SPLIT = ""


class EndpointKind(enum.StrEnum):
    MODEL = "model"  # /model/{registered model}/{route}/invocations
    SERVING = "serving"  # /serving-endpoints/{name}[/served-models/{route}]/invocations

    @property
    def noun(self) -> str:
        return "registered model" if self is EndpointKind.MODEL else "serving endpoint"


@dataclass(frozen=True)
class Destination:
    """Where a route sends (a share of) its requests: one model version, run with `compute`."""

    model: str
    version: str
    compute: Compute
    weight: int = 100  # percent of the route's requests
    served_name: str = ""  # what the `served-model-name` response header says

    @property
    def key(self) -> VersionKey:
        return (self.model, self.version)


@dataclass(frozen=True)
class Route:
    """A name a scoring URL addresses inside an endpoint, and where its requests go."""

    name: str
    destinations: tuple[Destination, ...]

    def pick(self, chooser: random.Random | None = None) -> Destination:
        """The destination of one request, drawn by the weights."""
        weighted = [d for d in self.destinations if d.weight > 0] or list(self.destinations)
        draw = (chooser or random).uniform(0, sum(d.weight for d in weighted))
        for destination in weighted:
            if draw < destination.weight:
                return destination
            draw -= destination.weight
        return weighted[-1]


@dataclass(frozen=True)
class Endpoint:
    kind: EndpointKind
    name: str
    routes: Mapping[str, Route] = field(default_factory=lambda: MappingProxyType({}))
    id: str | None = None  # a serving endpoint's id (the permissions API's handle)
    grants: tuple[Grant, ...] = ()
    rate_limits: tuple[RateLimit, ...] = ()

    def route(self, name: str) -> Route | None:
        return self.routes.get(name)

    def permission_of(self, principal: Principal) -> Permission:
        """What `principal` may do here: the most its token or one of the endpoint's grants gives."""
        return effective_permission(principal, self.grants)

    def destinations(self) -> list[Destination]:
        """Each version some route sends to, once."""
        seen: dict[VersionKey, Destination] = {}
        for route in self.routes.values():
            for destination in route.destinations:
                seen.setdefault(destination.key, destination)
        return list(seen.values())

    @property
    def described(self) -> str:
        return f"{self.kind.noun} '{self.name}'"


def model_endpoint(model: str, routes: Mapping[str, str], served: Iterable[tuple[str, Compute]]) -> Endpoint:
    """A registered model with serving enabled: a route per stage or alias (to the version it points to)
    and one per served version number, each to one destination."""
    compute = dict(served)
    compiled: dict[str, Route] = {}
    for version in compute:
        compiled[version] = _single(version, Destination(model, version, compute[version], 100, f"{model}-{version}"))
    for name, version in routes.items():
        destination = Destination(model, version, compute.get(version, Compute()), 100, f"{model}-{version}")
        compiled[name] = _single(name, destination)
    return Endpoint(EndpointKind.MODEL, model, MappingProxyType(compiled))


def serving_endpoint(
    name: str,
    endpoint_id: str,
    live: EndpointConfig | None,
    pending: EndpointConfig | None,
    grants: tuple[Grant, ...],
    rate_limits: tuple[RateLimit, ...],
) -> Endpoint:
    """A named endpoint: its traffic split (of the live config) and a route per served entity's name.

    A served entity of the pending config is addressable by name while the update rolls out; its
    requests wait for its replicas like any cold start.
    """
    compiled: dict[str, Route] = {}
    for config in (pending, live):  # the live config's entity wins a name both configs use
        for entity in config.served_entities if config else ():
            compiled[entity.name] = _single(entity.name, _destination(entity, 100))
    if live is not None:
        split = tuple(_destination(live.entity(entity), share) for entity, share in live.traffic)
        compiled[TRAFFIC_SPLIT] = Route(TRAFFIC_SPLIT, split)
    return Endpoint(EndpointKind.SERVING, name, MappingProxyType(compiled), endpoint_id, grants, rate_limits)


def _single(name: str, destination: Destination) -> Route:
    return Route(name, (destination,))


def _destination(entity: ServedEntity | None, weight: int) -> Destination:
    assert entity is not None  # parse_config checked that every share names a served entity
    return Destination(entity.entity_name, entity.entity_version, entity.compute, weight, entity.name)
