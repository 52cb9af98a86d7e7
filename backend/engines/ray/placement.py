"""Where a replica's actor may run: a served entity's placement (control/placement.py) as Ray sees it.

`label_selector` (equality on node labels, `ray start --labels`) and custom `resources`
(`ray start --resources`) are Ray's own actor options; Ray keeps an actor that no node can take
pending, silently, so `unmet` says why in the replica's message.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from rtserve.server.control.placement import shown
from rtserve.server.engines.base import ReplicaSpec


def actor_options(spec: ReplicaSpec, options: Mapping[str, Any]) -> dict[str, Any]:
    """`options` with the replica's labels selected and its custom resources reserved (on top of the engine's)."""
    placed = dict(options)
    if spec.resources:
        placed["resources"] = {**placed.get("resources", {}), **spec.resources}
    if spec.node_labels:
        placed["label_selector"] = dict(spec.node_labels)
    return placed


def unmet(spec: ReplicaSpec, nodes: Iterable[Mapping[str, Any]]) -> str | None:
    """Why no live node of the cluster (`ray.nodes()`) can ever take the replica; None if one can."""
    alive = [node for node in nodes if node.get("Alive")]
    labelled = [node for node in alive if spec.node_labels.items() <= dict(node.get("Labels") or {}).items()]
    if not labelled:
        return f"no live node of the Ray cluster has the labels {shown(spec.node_labels)}"
    if not any(_holds(node, spec.resources) for node in labelled):
        where = f" among those labelled {shown(spec.node_labels)}" if spec.node_labels else ""
        return f"no live node of the Ray cluster{where} has the resources {shown(spec.resources)}"
    return None


def _holds(node: Mapping[str, Any], resources: Mapping[str, float]) -> bool:
    total = node.get("Resources") or {}
    return all(float(total.get(name, 0.0)) >= amount for name, amount in resources.items())
