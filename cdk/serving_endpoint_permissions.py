"""`ServingEndpointPermissions`: who may view, query or manage one serving endpoint, with typed grants.

    iris = ServingEndpoint(stack, "iris", name="iris", served_entities=[ServedEntity("iris-classifier", 1)])
    ServingEndpointPermissions(stack, "iris-acl", endpoint=iris,
                               access_control=[AccessControl.user("checkout-service", PermissionLevel.CAN_QUERY),
                                               AccessControl.group("users", PermissionLevel.CAN_VIEW)])

The grants listed are exactly the endpoint's own grants: the creator's CAN_MANAGE is removed unless
it is listed (ADMIN tokens always manage every endpoint, and each token keeps its own permission).
Everything that can be checked before Terraform runs is checked when the construct is built;
Terraform references (tokens) are left to Terraform and the backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from constructs import Construct

from rtserve.cdk._props import unresolved
from rtserve.cdk.rtserve import Permissions, PermissionsAccessControl, RtserveProvider
from rtserve.cdk.serving_endpoint import ServingEndpoint
from rtserve.spec import (
    ADMINS_GROUP,
    PERMISSION_LEVELS,
    PRINCIPAL_KINDS,
    USERS_GROUP,
    PermissionLevel,
    SpecError,
    check_permission_level,
    one_of_rule,
)

__all__ = ["AccessControl", "PermissionLevel", "ServingEndpointPermissions"]

ENDPOINT = (
    "ServingEndpointPermissions: endpoint must be a ServingEndpoint or an endpoint id "
    "(e.g. a ServingEndpoint's endpoint_id); got {value!r}"
)
NO_GRANTS = (
    "ServingEndpointPermissions: access_control needs at least one AccessControl, "
    "e.g. [AccessControl.user('checkout-service', PermissionLevel.CAN_QUERY)]; got {value!r}"
)
GRANT_TYPE = "ServingEndpointPermissions: access_control[{index}] must be an AccessControl; got {value!r}"
GRANTED_TWICE = (
    "ServingEndpointPermissions: {kind} {principal!r} is granted twice ({first} and {second}); "
    "the endpoint keeps one level per principal: keep one AccessControl for it"
)
ONE_PRINCIPAL = f"AccessControl: name exactly one of {', '.join(PRINCIPAL_KINDS)}; got {{named}}"
PRINCIPAL_NAME = "AccessControl: {kind} must be a non-empty string; got {value!r}"
LEVEL = f"AccessControl: level must be {one_of_rule(PERMISSION_LEVELS)}; got {{value!r}}"
ADMINS = (
    f"AccessControl: the group {ADMINS_GROUP!r} always manages every endpoint and cannot be granted to; "
    f"grant to a token by name or to the group {USERS_GROUP!r}"
)


@dataclass(frozen=True)
class AccessControl:
    """One grant: a principal (exactly one of the three names) and the level it gets on the endpoint.

    Prefer the factories: ``AccessControl.user("checkout-service", PermissionLevel.CAN_QUERY)``.

    :param level: what the principal may do (required).
    :param user_name: a token's name (rtserve's principals are its tokens). @default None
    :param group_name: ``"users"``, every token. @default None
    :param service_principal_name: a token's name, as ``user_name``. @default None
    """

    level: PermissionLevel | str
    user_name: str | None = None
    group_name: str | None = None
    service_principal_name: str | None = None

    def __post_init__(self) -> None:
        named = [kind for kind in PRINCIPAL_KINDS if getattr(self, kind) is not None]
        if len(named) != 1:
            raise ValueError(ONE_PRINCIPAL.format(named=", ".join(named) or "none"))
        value = getattr(self, named[0])
        if not isinstance(value, str) or not (value.strip() or unresolved(value)):
            raise ValueError(PRINCIPAL_NAME.format(kind=named[0], value=value))
        if self.group_name == ADMINS_GROUP:
            raise ValueError(ADMINS)
        if not unresolved(self.level):
            try:
                object.__setattr__(self, "level", PermissionLevel(check_permission_level(self.level)))
            except SpecError:
                raise ValueError(LEVEL.format(value=self.level)) from None

    @staticmethod
    def user(name: str, level: PermissionLevel | str) -> AccessControl:
        return AccessControl(level, user_name=name)

    @staticmethod
    def group(name: str, level: PermissionLevel | str) -> AccessControl:
        return AccessControl(level, group_name=name)

    @staticmethod
    def service_principal(name: str, level: PermissionLevel | str) -> AccessControl:
        return AccessControl(level, service_principal_name=name)

    @property
    def principal(self) -> tuple[str, str]:
        """(kind, name) of the principal."""
        kind = next(kind for kind in PRINCIPAL_KINDS if getattr(self, kind) is not None)
        return kind, getattr(self, kind)

    def _binding(self) -> PermissionsAccessControl:
        kind, name = self.principal
        level = self.level.value if isinstance(self.level, PermissionLevel) else self.level
        return PermissionsAccessControl(permission_level=level, **{kind: name})


class ServingEndpointPermissions(Construct):
    """The access control list of one serving endpoint: exactly these grants, in any order.

    Destroying it removes the endpoint's own grants (each token keeps its own permission).

    :param endpoint: the ServingEndpoint, or an endpoint's id (not its name) (required).
    :param access_control: the grants, each an AccessControl (at least one, required).
    :param provider: the rtserve provider to use. @default the stack's default provider
    """

    def __init__(
        self,
        scope: Construct,
        id: str,  # noqa: A002 - the constructs convention
        *,
        endpoint: ServingEndpoint | str,
        access_control: Sequence[AccessControl],
        provider: RtserveProvider | None = None,
    ) -> None:
        super().__init__(scope, id)
        _validate(endpoint, access_control)
        self.endpoint_id = endpoint.endpoint_id if isinstance(endpoint, ServingEndpoint) else endpoint
        self.access_control = list(access_control)
        self.resource = Permissions(
            self,
            "resource",
            serving_endpoint_id=self.endpoint_id,
            access_control=[grant._binding() for grant in access_control],
            provider=provider,
        )

    @property
    def object_id(self) -> str:
        """`/serving-endpoints/<endpoint id>` (a Terraform reference, resolved at apply)."""
        return self.resource.id


def _validate(endpoint: ServingEndpoint | str, grants: Sequence[AccessControl]) -> None:
    """Check every prop before any child exists."""
    if not isinstance(endpoint, ServingEndpoint) and not (isinstance(endpoint, str) and endpoint.strip()):
        raise ValueError(ENDPOINT.format(value=endpoint))
    if isinstance(grants, str | bytes) or not isinstance(grants, Sequence) or not grants:
        raise ValueError(NO_GRANTS.format(value=grants))
    levels: dict[tuple[str, str], PermissionLevel | str] = {}
    for index, grant in enumerate(grants):
        if not isinstance(grant, AccessControl):
            raise TypeError(GRANT_TYPE.format(index=index, value=grant))
        kind, principal = grant.principal
        if unresolved(principal):
            continue
        first = levels.setdefault((kind, principal), grant.level)
        if first != grant.level:
            raise ValueError(
                GRANTED_TWICE.format(kind=kind, principal=principal, first=str(first), second=str(grant.level))
            )
