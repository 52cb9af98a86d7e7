"""The `provider "rtserve"` block."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from constructs import Construct

from rtserve.cdk._framework import cdktf
from rtserve.cdk.rtserve._base import generator_metadata, without_none
from rtserve.spec import PROVIDER_NAME, PROVIDER_SOURCE


class RtserveProvider(cdktf.TerraformProvider):
    """Configures the rtserve provider.

    :param host: base URL of the backend. Default: RTSERVE_HOST when Terraform runs.
    :param token: API token. Default: RTSERVE_TOKEN when Terraform runs; prefer that, because a value
        given here is written into cdk.tf.json.
    :param alias: provider alias, for several backends in one stack.
    """

    TF_RESOURCE_TYPE = PROVIDER_NAME

    def __init__(
        self, scope: Construct, id_: str, *, host: str | None = None, token: str | None = None, alias: str | None = None
    ) -> None:
        super().__init__(
            scope,
            id_,
            terraform_resource_type=self.TF_RESOURCE_TYPE,
            terraform_generator_metadata=generator_metadata(),
            terraform_provider_source=PROVIDER_SOURCE,
        )
        self._host = host
        self._token = token
        self._alias = alias

    # cdktf's TerraformProvider.alias is a stub "always overridden" by generated bindings; jsii calls
    # this Python property instead (it may do so before __init__ has set _alias).
    @property
    def alias(self) -> str | None:
        return getattr(self, "_alias", None)

    @alias.setter
    def alias(self, value: str | None) -> None:
        self._alias = value

    @property
    def host(self) -> str | None:
        return self._host

    def _synthesize_attributes(self) -> Mapping[str, Any]:
        return without_none({"host": self._host, "token": self._token, "alias": self.alias})
