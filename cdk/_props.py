"""Checks the constructs share: Terraform references are not checked, and durations are Go durations."""

from __future__ import annotations

import re

from rtserve.cdk._framework import cdktf

_DURATION = re.compile(r"^(\d+(\.\d+)?(ms|h|m|s))+$")


def unresolved(value: object) -> bool:
    """True for a Terraform reference (a token): Terraform resolves it, and the backend validates it."""
    return isinstance(value, str | int | float) and not isinstance(value, bool) and cdktf.Token.is_unresolved(value)


def is_duration(value: object) -> bool:
    """A duration as Terraform's `timeouts` take it: "90s", "20m", "1h30m"; or a reference."""
    return unresolved(value) or (isinstance(value, str) and bool(_DURATION.match(value)))
