"""`rtserve_permissions`: the access control list of one serving endpoint."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Unpack

from constructs import Construct

from rtserve.cdk._framework import cdktf
from rtserve.cdk.rtserve._base import MetaArguments, blocks, generator_metadata, without_none


@dataclass(frozen=True)
class PermissionsAccessControl:
    """One `access_control` block: exactly one of `user_name`, `group_name`, `service_principal_name`, and the
    level granted (`CAN_VIEW`, `CAN_QUERY`, `CAN_MANAGE`)."""

    permission_level: str
    user_name: str | None = None
    group_name: str | None = None
    service_principal_name: str | None = None


class Permissions(cdktf.TerraformResource):
    """`rtserve_permissions` (see docs/provider.md for every attribute)."""

    TF_RESOURCE_TYPE = "rtserve_permissions"

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        serving_endpoint_id: str,
        access_control: Sequence[PermissionsAccessControl | Mapping[str, Any]],
        **meta: Unpack[MetaArguments],
    ) -> None:
        super().__init__(
            scope,
            id_,
            terraform_resource_type=self.TF_RESOURCE_TYPE,
            terraform_generator_metadata=generator_metadata(),
            **meta,
        )
        self.serving_endpoint_id = serving_endpoint_id
        self.access_control = list(access_control)

    def _synthesize_attributes(self) -> Mapping[str, Any]:
        return without_none(
            {"serving_endpoint_id": self.serving_endpoint_id, "access_control": blocks(self.access_control)}
        )

    # -- attributes ------------------------------------------------------------------------------
    @property
    def id(self) -> str:
        return self.get_string_attribute("id")

    @property
    def object_type(self) -> str:
        return self.get_string_attribute("object_type")
