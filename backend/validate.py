"""Checks of request values that several routes share; each raises a 400 that names the field.

The rules themselves are in `rtserve.spec` (shared with the provider and the constructs); here they
become the API's errors.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
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
