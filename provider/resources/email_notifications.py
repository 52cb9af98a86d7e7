"""The `email_notifications` block of `rtserve_serving_endpoint`: schema, request body and the block read
back from an endpoint's detail. No I/O.

Wire form (POST at creation, PATCH .../notifications, GET .../<name>): `{"on_update_failure": [...],
"on_update_success": [...]}`, an empty list left out; no `email_notifications` means nobody is e-mailed.
Addresses are checked by the backend (its 400 names the bad one) and reach the plan as a diagnostic.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tf.schema import Attribute, Block
from tf.types import List, String

from rtserve.provider.blocks import SingleNestedBlock

FIELDS = ("on_update_failure", "on_update_success")

EMAIL_NOTIFICATIONS = SingleNestedBlock(
    "email_notifications",
    Block(
        description="Who the backend e-mails when a config update of the endpoint finishes (through the SMTP "
        "server it is configured with). Changing it is an in-place update: no config update, nothing waits.",
        attributes=[
            Attribute(
                "on_update_failure",
                List(String()),
                description="Addresses told when a config update fails (UPDATE_FAILED).",
                optional=True,
            ),
            Attribute(
                "on_update_success",
                List(String()),
                description="Addresses told when a config update succeeds (the new config serves).",
                optional=True,
            ),
        ],
    ),
)


def addresses_of(state: Mapping[str, Any]) -> dict[str, list[str]]:
    """The block's lists, each [] when unset: what the backend would store."""
    block = state.get("email_notifications")
    block = block if isinstance(block, dict) else {}
    return {field: list(block.get(field) or []) for field in FIELDS}


def request_notifications(state: Mapping[str, Any]) -> dict[str, list[str]]:
    """The request's `email_notifications`, as the SDK sends it (empty lists left out)."""
    return {field: addresses for field, addresses in addresses_of(state).items() if addresses}


def notifications_from_detail(base: Mapping[str, Any], detail: Mapping[str, Any]) -> dict[str, Any] | None:
    """The block as read back; `base`'s own spelling when it means the same (an absent list and an empty
    one, no block and an empty one), so a configuration never differs from its own result."""
    reported = detail.get("email_notifications") or {}
    read = {field: list(reported.get(field) or []) for field in FIELDS}
    if addresses_of(base) == read:
        prior = base.get("email_notifications")
        return prior if isinstance(prior, dict) else None
    if not any(read.values()):
        return None
    return {field: addresses or None for field, addresses in read.items()}
