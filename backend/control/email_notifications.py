"""A serving endpoint's e-mail notifications (the SDK's `EmailNotifications`): who is told when a config
update finishes, and what they are told. Delivery is backend/mailer.py's; the address rule is rtserve/spec.py's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rtserve.server.errors import invalid
from rtserve.server.validate import checked, known_fields
from rtserve.spec import EMAIL_NOTIFICATION_LISTS, check_email_addresses

if TYPE_CHECKING:
    from rtserve.server.control.serving_config import EndpointConfig


@dataclass(frozen=True)
class EmailNotifications:
    on_update_failure: tuple[str, ...] = ()
    on_update_success: tuple[str, ...] = ()

    def to_stored(self) -> dict[str, list[str]]:
        """Stored and answered like the SDK's `as_dict`: an empty list is left out."""
        return {name: list(addresses) for name in EMAIL_NOTIFICATION_LISTS if (addresses := getattr(self, name))}

    @classmethod
    def from_stored(cls, stored: dict[str, list[str]]) -> EmailNotifications:
        return cls(**{name: tuple(stored.get(name, ())) for name in EMAIL_NOTIFICATION_LISTS})


def parse_email_notifications(value: Any, where: str = "email_notifications") -> EmailNotifications:
    """The notifications given in a request (absent or null: none), or a 400 naming the bad field or address."""
    if value is None:
        return EmailNotifications()
    if not isinstance(value, dict):
        raise invalid(f"'{where}' must be an object with {' and/or '.join(EMAIL_NOTIFICATION_LISTS)}; got {value!r}.")
    known_fields(value, where, EMAIL_NOTIFICATION_LISTS)
    return EmailNotifications(
        **{
            name: checked(check_email_addresses, value.get(name), f"{where}.{name}")
            for name in EMAIL_NOTIFICATION_LISTS
        }
    )


def update_message(endpoint: str, config_version: int, failure: str | None) -> str:
    """The subject of the e-mail sent when an update of `endpoint` finishes (`failure`: why it failed)."""
    if failure is None:
        return f"rtserve: serving endpoint '{endpoint}' now serves config version {config_version}"
    return f"rtserve: serving endpoint '{endpoint}' failed to update to config version {config_version}"


def update_body(endpoint: str, config: EndpointConfig, failure: str | None) -> str:
    """The e-mail's text: what was rolled out, and why it failed if it did."""
    served = "\n".join(f"  {e.name}: version {e.entity_version} of '{e.entity_name}'" for e in config.served_entities)
    if failure is None:
        outcome = f"Serving endpoint '{endpoint}' now serves config version {config.config_version}:"
    else:
        outcome = (
            f"Config version {config.config_version} of serving endpoint '{endpoint}' failed ({failure}); "
            "the endpoint keeps serving its previous config. It was to serve:"
        )
    return f"{outcome}\n{served}\n\nSent by rtserve (the endpoint's email_notifications).\n"
