"""A serving endpoint's e-mail notifications (the SDK's `EmailNotifications`): who is told when a config
update finishes, and what they are told. Delivery is backend/mailer.py's."""

from __future__ import annotations

from dataclasses import dataclass
from email.headerregistry import Address
from typing import TYPE_CHECKING, Any

from rtserve.server.errors import invalid
from rtserve.server.validate import known_fields

if TYPE_CHECKING:
    from rtserve.server.control.serving_config import EndpointConfig

FIELDS = ("on_update_failure", "on_update_success")
# Bounds what one PATCH can make the backend send per update (Databricks documents no limit).
MAX_ADDRESSES = 50


@dataclass(frozen=True)
class EmailNotifications:
    on_update_failure: tuple[str, ...] = ()
    on_update_success: tuple[str, ...] = ()

    def to_stored(self) -> dict[str, list[str]]:
        """Stored and answered like the SDK's `as_dict`: an empty list is left out."""
        return {name: list(addresses) for name in FIELDS if (addresses := getattr(self, name))}

    @classmethod
    def from_stored(cls, stored: dict[str, list[str]]) -> EmailNotifications:
        return cls(**{name: tuple(stored.get(name, ())) for name in FIELDS})


def parse_email_notifications(value: Any, where: str = "email_notifications") -> EmailNotifications:
    """The notifications given in a request (absent or null: none), or a 400 naming the bad field or address."""
    if value is None:
        return EmailNotifications()
    if not isinstance(value, dict):
        raise invalid(f"'{where}' must be an object with {' and/or '.join(FIELDS)}; got {value!r}.")
    known_fields(value, where, FIELDS)
    return EmailNotifications(**{name: _addresses(value.get(name), f"{where}.{name}") for name in FIELDS})


def _addresses(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise invalid(f"'{where}' must be a list of e-mail addresses; got {value!r}.")
    if len(value) > MAX_ADDRESSES:
        raise invalid(f"'{where}' lists {len(value)} addresses; at most {MAX_ADDRESSES} are accepted.")
    for address in value:
        if not is_address(address):
            raise invalid(f"'{where}': {address!r} is not an e-mail address (like name@example.com).")
    return tuple(dict.fromkeys(value))  # once each, in the given order


def is_address(value: Any) -> bool:
    """Whether `value` is one plain address (`local@domain`): no display name, no second address, no line break."""
    if not isinstance(value, str) or not value or value != value.strip():
        return False
    try:
        parsed = Address(addr_spec=value)
    except Exception:  # noqa: BLE001 - the email package raises several kinds for a malformed address
        return False
    return bool(parsed.username) and "." in parsed.domain and parsed.addr_spec == value


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
