"""What the controller saw at its last tick, published whole: the one thing readers ask.

The controller builds a new `Snapshot` at the end of every tick (and when a change through the API
re-reads the serving endpoints) and replaces the old one in a single assignment, so the gateway, the
status APIs and the UI never see a half-updated picture and never read the controller's own fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from rtserve.server.control.endpoint import Endpoint, EndpointKind
from rtserve.server.control.reconciler import VersionView
from rtserve.server.control.serving_endpoints import ServingEndpointState

VersionKey = tuple[str, str]
EndpointKey = tuple[EndpointKind, str]
_EMPTY: Mapping = MappingProxyType({})


@dataclass(frozen=True)
class Snapshot:
    # Every endpoint of both APIs, compiled into the one internal model (control/endpoint.py).
    endpoints: Mapping[EndpointKey, Endpoint] = field(default_factory=lambda: _EMPTY)
    # (model, version) -> the observed status of each served version
    views: Mapping[VersionKey, VersionView] = field(default_factory=lambda: _EMPTY)
    # Serving endpoints as stored (config, pending config, tags): what the GA API's status reports.
    serving_endpoints: Mapping[str, ServingEndpointState] = field(default_factory=lambda: _EMPTY)
    # registered models whose registry versions have been read since their last change (enable, transition)
    fresh: frozenset[str] = field(default_factory=frozenset)

    def endpoint(self, kind: EndpointKind, name: str) -> Endpoint | None:
        return self.endpoints.get((kind, name))

    def model_endpoint(self, model: str) -> Endpoint | None:
        """The model endpoint of a registered model, if serving is enabled for it."""
        return self.endpoints.get((EndpointKind.MODEL, model))

    def model_routes(self, model: str) -> dict[str, str]:
        """A model endpoint's stage and alias routes: route name -> the version it points to."""
        endpoint = self.model_endpoint(model)
        if endpoint is None:
            return {}
        return {name: route.destinations[0].version for name, route in endpoint.routes.items() if not name.isdigit()}

    def view(self, model: str, version: str) -> VersionView | None:
        return self.views.get((model, version))

    def is_stale(self, model: str) -> bool:
        """True while a change to the model (enable, transition) has not been read from the registry yet."""
        return model not in self.fresh
