"""A served entity's `environment_vars`: plain values and secret references, checked, then resolved.

Pure, except `resolve`, which reads the secret store through the function it is given. The config
keeps variables as configured (a secret as its reference, `{{secrets/<scope>/<key>}}`); values are
resolved only when a replica starts, so no stored state, status or event ever holds one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from rtserve.server.errors import invalid

# Databricks' form: the whole value is one reference.
REFERENCE = re.compile(r"\{\{\s*secrets/([^/{}\s]+)/([^/{}\s]+)\s*\}\}")
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Variables that native libraries read once, when they are loaded. The shared fork server imported
# NumPy, pandas and scikit-learn (and with them OpenBLAS/MKL/OpenMP) before any replica existed, so a
# replica forked from it would ignore them: a replica that sets one starts in a fresh interpreter
# instead, which sets its variables before it imports them (slower: it imports MLflow itself).
IMPORT_TIME_VARIABLES = frozenset(
    {"OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"}
)
# The user's own way to ask for a fresh interpreter, for any variable read at import time.
FRESH_INTERPRETER = "RTSERVE_FRESH_INTERPRETER"
Variables = tuple[tuple[str, str], ...]


def parse_environment_vars(value: Any, where: str) -> Variables:
    """`{"NAME": "value" | "{{secrets/scope/key}}"}` as sorted (name, value) pairs, or a 400 naming the field."""
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise invalid(f"'{where}' must be an object of variable names to string values.")
    for name, text in value.items():
        if not NAME.fullmatch(name):
            raise invalid(f"'{where}.{name}': a variable name is letters, digits and underscores, not first a digit.")
        if name.startswith("RTSERVE_") and name != FRESH_INTERPRETER:
            raise invalid(f"'{where}.{name}': RTSERVE_ variables belong to rtserve itself.")
        if not isinstance(text, str):
            raise invalid(f"'{where}.{name}' must be a string; got {text!r}.")
        if "{{" in text and not REFERENCE.fullmatch(text):
            raise invalid(
                f"'{where}.{name}': a secret reference is the whole value, {{{{secrets/<scope>/<key>}}}}; got {text!r}."
            )
    if value.get(FRESH_INTERPRETER, "true").lower() not in ("true", "false"):
        raise invalid(f'\'{where}.{FRESH_INTERPRETER}\' must be "true" or "false".')
    return tuple(sorted(value.items()))


def reference(text: str) -> tuple[str, str] | None:
    """(scope, key) if `text` is a secret reference."""
    found = REFERENCE.fullmatch(text)
    return (found.group(1), found.group(2)) if found else None


def references(variables: Variables) -> list[tuple[str, str]]:
    return [ref for _, text in variables if (ref := reference(text)) is not None]


def needs_fresh_interpreter(variables: Iterable[tuple[str, str]]) -> bool:
    """True if a variable must be set before the libraries the fork server pre-imported load."""
    names = dict(variables)
    return names.get(FRESH_INTERPRETER, "").lower() == "true" or bool(IMPORT_TIME_VARIABLES & names.keys())


def resolve(variables: Variables, secret: Callable[[str, str], str]) -> dict[str, str]:
    """The replica's environment: each reference replaced by `secret(scope, key)` (which may raise)."""
    resolved = {}
    for name, text in variables:
        ref = reference(text)
        resolved[name] = secret(*ref) if ref else text
    return resolved
