"""What the controller saw at its last tick, published whole: the one thing readers ask.

The controller builds a new `Snapshot` at the end of every tick (and when a change through the API
re-reads the named endpoints) and replaces the old one in a single assignment, so the gateway, the
status APIs and the UI never see a half-updated picture and never read the controller's own fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from rtserve.server.control.reconciler import VersionView
from rtserve.server.control.serving_endpoints import ServingEndpointState

VersionKey = tuple[str, str]
_EMPTY: Mapping = MappingProxyType({})


@dataclass(frozen=True)
class Snapshot:
    # model -> route ("Staging", "Production", an alias) -> the version it answers from
    routes: Mapping[str, Mapping[str, str]] = field(default_factory=lambda: _EMPTY)
    # (model, version) -> the observed status of each served version
    views: Mapping[VersionKey, VersionView] = field(default_factory=lambda: _EMPTY)
    # registered models with serving enabled (preview API)
    enabled: frozenset[str] = frozenset()
    # named serving endpoints (GA API), by name
    serving: Mapping[str, ServingEndpointState] = field(default_factory=lambda: _EMPTY)
    # models whose registry versions have been read since their last change (enable, transition)
    fresh: frozenset[str] = field(default_factory=frozenset)

    def view(self, model: str, version: str) -> VersionView | None:
        return self.views.get((model, version))

    def resolve(self, model: str, route_or_version: str) -> str | None:
        """The version a URL segment ("Production", an alias, or "3") scores on, if it is served."""
        if route_or_version.isdigit():
            return route_or_version if (model, route_or_version) in self.views else None
        return self.routes.get(model, {}).get(route_or_version)

    def is_stale(self, model: str) -> bool:
        """True while a change to the model (enable, transition) has not been read from the registry yet."""
        return model not in self.fresh
