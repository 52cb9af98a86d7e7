"""Access control lists of named serving endpoints (Databricks' permissions API for serving endpoints).

A token's own permission (CAN_VIEW, CAN_QUERY, CAN_MANAGE or ADMIN, given by `rtserve tokens
create`) holds on every endpoint. An endpoint's list can grant more on that one endpoint: to a token
by its name (as `user_name` or `service_principal_name`; rtserve's principals are its tokens), or to
the group `users` (every token). It never takes away what a token's own permission gives, so a
consumer gets a CAN_VIEW token and CAN_QUERY on the endpoints it may call. The group `admins`
(ADMIN tokens) can always manage every endpoint.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from rtserve.server.auth import Permission, Principal, authorize
from rtserve.server.errors import invalid

PRINCIPAL_KINDS = ("user_name", "group_name", "service_principal_name")
GRANTABLE = (Permission.CAN_VIEW, Permission.CAN_QUERY, Permission.CAN_MANAGE)
USERS_GROUP = "users"
ADMINS_GROUP = "admins"
ROOT_OBJECT = "/serving-endpoints/"  # where workspace-wide permissions are inherited from

LEVEL_DESCRIPTIONS = {
    Permission.CAN_VIEW: "Can view the endpoint, its status, logs and metrics",
    Permission.CAN_QUERY: "Can view the endpoint and send scoring requests to it",
    Permission.CAN_MANAGE: "Can view, query, update, delete the endpoint and change its permissions",
}


@dataclass(frozen=True)
class Grant:
    """One entry of an endpoint's list: a principal (by kind and name) and the level granted to it."""

    kind: str
    principal: str
    level: Permission

    def applies_to(self, principal: Principal) -> bool:
        if self.kind == "group_name":
            return self.principal == USERS_GROUP
        return self.principal == principal.name

    def to_stored(self) -> dict[str, str]:
        return {self.kind: self.principal, "permission_level": self.level.name}

    @classmethod
    def from_stored(cls, stored: Mapping[str, str]) -> Grant:
        kind = next(k for k in PRINCIPAL_KINDS if k in stored)
        return cls(kind, stored[kind], Permission[stored["permission_level"]])


def effective_permission(principal: Principal, grants: Iterable[Grant]) -> Permission:
    """What `principal` may do on an endpoint with these grants: the most its token or a grant gives."""
    granted = [grant.level for grant in grants if grant.applies_to(principal)]
    return max([principal.permission, *granted])


def check(where: str, endpoint_id: str | None, held: Permission, needed: Permission, action: str) -> None:
    """Refuse (403) an action on an endpoint (`where`: "serving endpoint 'x'") that needs more than the caller holds."""
    # Without an id (a model endpoint, or one not loaded yet), there is no permissions URL to point to.
    url = f"/api/2.0/permissions/serving-endpoints/{endpoint_id}"
    grant = f" Someone who manages the endpoint can grant it: PATCH {url}." if endpoint_id else ""
    authorize(held, needed, action, on=f" on {where}", hint=grant)


def parse_access_control_list(value: Any, known_principals: set[str]) -> list[Grant]:
    """The `access_control_list` of a PUT or PATCH, checked in full; one grant per principal (the highest)."""
    if not isinstance(value, list):
        raise invalid(
            "'access_control_list' must be a list of {user_name|group_name|service_principal_name, permission_level}."
        )
    grants: dict[tuple[str, str], Grant] = {}
    for index, entry in enumerate(value):
        grant = _parse_entry(entry, f"access_control_list[{index}]", known_principals)
        previous = grants.get((grant.kind, grant.principal))
        if previous is None or previous.level < grant.level:
            grants[(grant.kind, grant.principal)] = grant
    return list(grants.values())


def _parse_entry(entry: Any, where: str, known_principals: set[str]) -> Grant:
    if not isinstance(entry, dict):
        raise invalid(f"{where} must be an object; got {type(entry).__name__}.")
    named = [kind for kind in PRINCIPAL_KINDS if entry.get(kind) not in (None, "")]
    if len(named) != 1:
        raise invalid(f"{where} must name exactly one of {', '.join(PRINCIPAL_KINDS)}; it names {len(named)}.")
    kind = named[0]
    principal = entry[kind]
    if not isinstance(principal, str):
        raise invalid(f"{where}.{kind} must be a string; got {type(principal).__name__}.")
    level_name = entry.get("permission_level")
    level = Permission.__members__.get(level_name) if isinstance(level_name, str) else None
    if level not in GRANTABLE:
        choices = ", ".join(level.name for level in GRANTABLE)
        raise invalid(f"{where}.permission_level must be one of {choices}; got {level_name!r}.")
    if kind == "group_name":
        _check_group(principal, where)
    elif principal not in known_principals:
        raise invalid(
            f"{where}: principal '{principal}' does not exist. rtserve's principals are its tokens, by name: "
            f"create one with `rtserve tokens create --name {principal}`, or grant to the group '{USERS_GROUP}'."
        )
    return Grant(kind, principal, level)


def _check_group(group: str, where: str) -> None:
    if group == ADMINS_GROUP:
        raise invalid(f"{where}: the group '{ADMINS_GROUP}' can always manage every endpoint; it cannot be changed.")
    if group != USERS_GROUP:
        raise invalid(
            f"{where}: group '{group}' does not exist. rtserve has the groups '{USERS_GROUP}' (every token) "
            f"and '{ADMINS_GROUP}' (ADMIN tokens)."
        )


def merge(grants: Iterable[Grant], changes: Iterable[Grant]) -> list[Grant]:
    """PATCH: each change sets its principal's level, leaving the other grants as they are."""
    by_principal = {(grant.kind, grant.principal): grant for grant in grants}
    for change in changes:
        by_principal[(change.kind, change.principal)] = change
    return sorted(by_principal.values(), key=lambda grant: (grant.kind, grant.principal))


def permissions_response(endpoint_id: str, grants: Iterable[Grant], token_levels: Mapping[str, Permission]) -> dict:
    """GET's answer: direct grants, then what every token inherits from its own permission, then admins."""
    entries: dict[tuple[str, str], list[dict]] = {}
    for grant in grants:
        entries.setdefault((grant.kind, grant.principal), []).append(
            {"permission_level": grant.level.name, "inherited": False}
        )
    for name, level in sorted(token_levels.items()):
        if level < Permission.ADMIN:
            entries.setdefault(("user_name", name), []).append(_inherited(level))
    entries[("group_name", ADMINS_GROUP)] = [_inherited(Permission.CAN_MANAGE)]
    return {
        "object_id": f"/serving-endpoints/{endpoint_id}",
        "object_type": "serving-endpoint",
        "access_control_list": [
            {kind: principal, "display_name": principal, "all_permissions": permissions}
            for (kind, principal), permissions in entries.items()
        ],
    }


def _inherited(level: Permission) -> dict:
    return {"permission_level": level.name, "inherited": True, "inherited_from_object": [ROOT_OBJECT]}


def permission_levels_response() -> dict:
    return {
        "permission_levels": [
            {"permission_level": level.name, "description": LEVEL_DESCRIPTIONS[level]} for level in GRANTABLE
        ]
    }
