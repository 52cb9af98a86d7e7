"""Everything rtserve knows about registry stages and aliases, in one place.

MLflow deprecates stages in favour of aliases; the seeds use stages. Both route here: a *route* is
a name a client may put in a URL ("Staging", "Production", or a registry alias such as
"champion") and resolves to one version. Which versions a route may point to, and when it moves,
is decided only by the functions below.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from rtserve.spec import ALL_STAGES as ALL_STAGES
from rtserve.spec import SERVING_STAGES
from rtserve.spec import canonical_stage as canonical_stage


@dataclass(frozen=True)
class RegisteredVersion:
    """A model version as the registry reports it."""

    version: str
    stage: str
    aliases: tuple[str, ...] = ()
    creation_timestamp: int = 0


def version_number(version: str) -> int:
    return int(version) if version.isdigit() else -1


def route_candidates(versions: Iterable[RegisteredVersion]) -> dict[str, list[str]]:
    """For each route, the versions it may point to, newest first."""
    candidates: dict[str, list[str]] = {}
    for item in sorted(versions, key=lambda v: version_number(v.version), reverse=True):
        if item.stage in SERVING_STAGES:
            candidates.setdefault(item.stage, []).append(item.version)
        for alias in item.aliases:
            candidates.setdefault(alias, []).append(item.version)
    return candidates


def choose_routes(candidates: Mapping[str, list[str]], previous: Mapping[str, str], ready: set[str]) -> dict[str, str]:
    """Where each route points now.

    A route points to its newest READY candidate. While no candidate is READY it keeps pointing
    to the version it pointed to before, if that one still answers: this is what makes a stage
    transition free of downtime. With neither, it points to the newest candidate, so requests
    wait for that version to start rather than fail.
    """
    routes: dict[str, str] = {}
    for route, versions in candidates.items():
        ready_candidates = [v for v in versions if v in ready]
        if ready_candidates:
            routes[route] = ready_candidates[0]
        elif previous.get(route) in ready:
            routes[route] = previous[route]
        else:
            routes[route] = versions[0]
    return routes


def served_versions(versions: Iterable[RegisteredVersion], routes: Mapping[str, str]) -> dict[str, str | None]:
    """Versions that must run, each with the stage whose compute config it uses (None: the default)."""
    served: dict[str, str | None] = {}
    for item in versions:
        if item.stage in SERVING_STAGES:
            served[item.version] = item.stage
        elif item.aliases:
            served.setdefault(item.version, None)
    # A version that left its stage keeps running (with that stage's compute) while it still holds the route.
    for route, version in routes.items():
        if version not in served or served[version] is None:
            served[version] = route if route in SERVING_STAGES else served.get(version)
    return served


def stage_labels(routes: Mapping[str, str], version: str) -> list[str]:
    """The stages whose URL currently answers from `version` (the UI's Staging/Production labels)."""
    return [stage for stage in SERVING_STAGES if routes.get(stage) == version]
