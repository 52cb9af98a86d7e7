"""Checks of request values that several routes share; each raises a 400 that names the field."""

from __future__ import annotations

from collections.abc import Collection

from rtserve.server.errors import invalid

# MLflow's SQL store keeps versions in a 64-bit integer column; anything larger cannot exist.
MAX_VERSION = 2**63 - 1


def version_number(value: object, field: str = "version") -> str:
    """A registry version number as its canonical string ("3"), or 400 naming `field`."""
    if isinstance(value, int) and not isinstance(value, bool):
        text = str(value) if 0 < value <= MAX_VERSION else ""
    else:
        text = value.strip() if isinstance(value, str) else ""
    if not is_version_number(text):
        raise invalid(f"'{field}' must be a model version number (1, 2, ...); got {shown(value)}.")
    return str(int(text))


def is_version_number(text: str) -> bool:
    """Whether `text` is a version number a registry can hold (decimal, 1 to 2**63 - 1)."""
    return text.isascii() and text.isdigit() and len(text) <= 19 and 0 < int(text) <= MAX_VERSION


def shown(value: object) -> str:
    """A request value for an error message: short values as they are, long ones and objects by kind."""
    if isinstance(value, str) and len(value) <= 40 or isinstance(value, int) and abs(value) <= MAX_VERSION:
        return repr(value)
    if isinstance(value, str | int):
        return "a value too long to show"
    return {dict: "an object", list: "a list", float: "a fraction", bool: repr(value)}.get(type(value), "no value")


def one_of(value: object, allowed: Collection[str], field: str) -> str:
    """`value` if it is one of the strings `allowed`, else 400 naming `field` and the choices."""
    if not isinstance(value, str) or value not in allowed:
        choices = f"'{next(iter(allowed))}'" if len(allowed) == 1 else f"one of {', '.join(allowed)}"
        raise invalid(f"'{field}' must be {choices}; got {shown(value)}.")
    return value
