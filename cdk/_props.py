"""Checks the constructs share: Terraform references are not checked, and durations are Go durations."""

from __future__ import annotations

import re
from collections.abc import Mapping

from rtserve.cdk._framework import cdktf

_DURATION = re.compile(r"^(\d+(\.\d+)?(ms|h|m|s))+$")


def unresolved(value: object) -> bool:
    """True for a Terraform reference (a token): Terraform resolves it, and the backend validates it."""
    return isinstance(value, str | int | float) and not isinstance(value, bool) and cdktf.Token.is_unresolved(value)


def is_duration(value: object) -> bool:
    """A duration as Terraform's `timeouts` take it: "90s", "20m", "1h30m"; or a reference."""
    return unresolved(value) or (isinstance(value, str) and bool(_DURATION.match(value)))


# `{owner}` is the prop's class: ServedEntity, ComputeConfig.
NODE_LABELS = '{owner}: placement_node_labels must map label keys to strings, e.g. {{"zone": "b"}}; got {value!r}'
RESOURCES = (
    '{owner}: placement_resources must map Ray resource names to amounts above 0, e.g. {{"licensed": 1}}; got {value!r}'
)


def check_placement(owner: str, node_labels: object, resources: object) -> None:
    """A placement's two maps (either may be None), or ValueError naming `owner` and the map that is wrong.
    The backend checks the rest (label syntax, Ray's rule that amounts above 1 are whole)."""
    if node_labels is not None and not (
        isinstance(node_labels, Mapping)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in node_labels.items())
    ):
        raise ValueError(NODE_LABELS.format(owner=owner, value=node_labels))
    if resources is not None and not (
        isinstance(resources, Mapping)
        and all(unresolved(amount) or _is_amount(amount) for amount in resources.values())
    ):
        raise ValueError(RESOURCES.format(owner=owner, value=resources))


def _is_amount(value: object) -> bool:
    """A Ray resource amount: a number above 0."""
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0
