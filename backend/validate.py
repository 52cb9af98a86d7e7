"""Checks of request values that several routes share; each raises a 400 that names the field.

The rules themselves are in `rtserve.spec` (shared with the provider and the constructs); here they
become the API's errors.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import TypeVar

from rtserve.server.errors import invalid
from rtserve.spec import MAX_VERSION as MAX_VERSION
from rtserve.spec import SpecError, check_one_of, check_version_number
from rtserve.spec import is_version_number as is_version_number
from rtserve.spec import shown as shown

T = TypeVar("T")


def checked(check: Callable[..., T], *args: object) -> T:
    """`check(*args)`, a rule of rtserve.spec, with its SpecError as a 400 carrying the same message."""
    try:
        return check(*args)
    except SpecError as error:
        raise invalid(str(error)) from None


def version_number(value: object, field: str = "version") -> str:
    """A registry version number as its canonical string ("3"), or 400 naming `field`."""
    return checked(check_version_number, value, field)


def one_of(value: object, allowed: Collection[str], field: str) -> str:
    """`value` if it is one of the strings `allowed`, else 400 naming `field` and the choices."""
    return checked(check_one_of, value, allowed, field)


def known_fields(obj: dict, where: str, accepted: Collection[str], refused: Mapping[str, str] | None = None) -> None:
    """Every field of `obj` is one rtserve honours, or a 400 that names the first other one: a field is never
    dropped silently. `refused` maps fields rtserve knows but does not offer to the reason; a null field is
    absent, as Databricks' clients send it."""
    prefix = f"{where}." if where else ""
    for name, value in obj.items():
        if value is None or name in accepted:
            continue
        if refused and name in refused:
            raise invalid(f"'{prefix}{name}' is not supported: {refused[name]}")
        raise invalid(f"'{prefix}{name}' is not a field rtserve knows here; it accepts {', '.join(sorted(accepted))}.")


def asks_for(setting: object) -> bool:
    """Whether a setting object asks for something (`{"enabled": false}` and empty objects do not)."""
    if isinstance(setting, dict):
        return bool(setting) and setting.get("enabled", True) is not False
    return bool(setting)
