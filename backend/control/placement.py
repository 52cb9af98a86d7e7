"""`placement` (rtserve's own field of a served entity, and of a model endpoint's compute config): the Ray
nodes replicas may run on.

Pure. `{"node_labels": {"k": "v"}, "resources": {"name": amount}}`: every replica's actor asks Ray for
nodes carrying all the labels (Ray's `label_selector`, equality only) and reserves the custom
resources (Ray's `resources`). Only the Ray engine places replicas; docs/ray.md.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rtserve.server.errors import invalid
from rtserve.server.validate import known_fields

# Ray's labels follow Kubernetes' syntax (ray/_private/label_utils.py): an optional DNS prefix and '/', then
# a name of at most 63 characters; a value is 1 to 63 characters of the same kind (no selector operators).
LABEL_KEY = re.compile(r"([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
LABEL_VALUE = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
# Resources a workload size already decides (num_cpus) or that rtserve never asks for.
BUILT_IN_RESOURCES = frozenset({"CPU", "GPU", "memory", "object_store_memory"})
RESOURCE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.:-]{0,127}")
FIELDS = ("node_labels", "resources")


@dataclass(frozen=True)
class Placement:
    node_labels: tuple[tuple[str, str], ...] = ()
    resources: tuple[tuple[str, float], ...] = ()

    def to_wire(self) -> dict[str, dict[str, Any]]:
        return {
            **({"node_labels": dict(self.node_labels)} if self.node_labels else {}),
            **({"resources": dict(self.resources)} if self.resources else {}),
        }

    @classmethod
    def from_stored(cls, stored: dict[str, dict[str, Any]]) -> Placement:
        return cls(
            tuple(sorted(stored.get("node_labels", {}).items())),
            tuple(sorted((name, float(amount)) for name, amount in stored.get("resources", {}).items())),
        )

    def to_json(self) -> str:
        """As a column stores it (a model endpoint's compute config)."""
        return json.dumps(self.to_wire(), sort_keys=True)

    @classmethod
    def from_json(cls, stored: str | None) -> Placement | None:
        return cls.from_stored(json.loads(stored)) if stored else None

    def describe(self) -> str:
        """For events and messages: `node labels zone=b; resources licensed=1`."""
        parts = []
        if self.node_labels:
            parts.append(f"node labels {shown(dict(self.node_labels))}")
        if self.resources:
            parts.append(f"resources {shown(dict(self.resources))}")
        return "; ".join(parts)


def shown(values: Mapping[str, Any]) -> str:
    """`name=value, ...`, an amount without a needless `.0`."""
    return ", ".join(
        f"{name}={value:g}" if isinstance(value, float) else f"{name}={value}" for name, value in values.items()
    )


def require_ray(engine: str, where: str) -> None:
    """A placement at `where` needs the Ray engine: refused, not ignored, since a replica meant for particular
    nodes must never run just anywhere (on the backend's own machine)."""
    if engine != "ray":
        raise invalid(
            f"'{where}' needs the Ray engine (rtserve server --engine ray); "
            "this server runs its replicas on its own machine (--engine local)."
        )


def parse_placement(value: Any, where: str) -> Placement | None:
    """`value` as a Placement (None when absent or empty), or a 400 naming the field that is wrong."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise invalid(f"'{where}' must be an object with node_labels and/or resources.")
    known_fields(value, where, FIELDS)
    labels = _mapping(value.get("node_labels"), f"{where}.node_labels")
    for key, text in labels.items():
        if not LABEL_KEY.fullmatch(key):
            raise invalid(f"'{where}.node_labels': {key!r} is not a label key ([prefix/]name, Kubernetes' syntax).")
        if not isinstance(text, str) or not LABEL_VALUE.fullmatch(text):
            raise invalid(
                f"'{where}.node_labels.{key}' must be a label value (letters, digits, '-', '_', '.'; at most 63); "
                f"got {text!r}."
            )
    resources = _mapping(value.get("resources"), f"{where}.resources")
    for name, amount in resources.items():
        if name in BUILT_IN_RESOURCES or not RESOURCE_NAME.fullmatch(name):
            raise invalid(
                f"'{where}.resources': {name!r} is not a custom resource name (the workload size decides CPUs; "
                f"{', '.join(sorted(BUILT_IN_RESOURCES))} are Ray's own)."
            )
        number = isinstance(amount, int | float) and not isinstance(amount, bool)
        # Ray's rule: a fraction of one unit, or whole units.
        if not number or not 0 < amount <= 1_000_000 or (amount > 1 and amount != int(amount)):
            raise invalid(f"'{where}.resources.{name}' must be a number above 0 (whole above 1); got {amount!r}.")
    if not labels and not resources:
        return None
    return Placement(
        tuple(sorted(labels.items())), tuple(sorted((name, float(amount)) for name, amount in resources.items()))
    )


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid(f"'{where}' must be an object.")
    return value
