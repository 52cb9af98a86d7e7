"""`data "rtserve_endpoint_status"`: the observed status of one model's serving."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Unpack

from constructs import Construct

from rtserve.cdk._framework import cdktf
from rtserve.cdk.rtserve._base import MetaArguments, generator_metadata


class DataRtserveEndpointStatus(cdktf.TerraformDataSource):
    TF_RESOURCE_TYPE = "rtserve_endpoint_status"

    def __init__(
        self, scope: Construct, id_: str, *, registered_model_name: str, **meta: Unpack[MetaArguments]
    ) -> None:
        super().__init__(
            scope,
            id_,
            terraform_resource_type=self.TF_RESOURCE_TYPE,
            terraform_generator_metadata=generator_metadata(),
            **meta,
        )
        self.registered_model_name = registered_model_name

    def _synthesize_attributes(self) -> Mapping[str, Any]:
        return {"registered_model_name": self.registered_model_name}

    @property
    def enabled(self) -> cdktf.IResolvable:
        return self.get_boolean_attribute("enabled")

    @property
    def state(self) -> str:
        return self.get_string_attribute("state")

    @property
    def state_message(self) -> str:
        return self.get_string_attribute("state_message")

    @property
    def compute_config(self) -> cdktf.IResolvable:
        """List of {stage, workload_size, scale_to_zero_enabled, creation_timestamp, user_id}."""
        return self.interpolation_for_attribute("compute_config")

    @property
    def versions(self) -> cdktf.IResolvable:
        """List of {version, service_state, service_message, config_update_state, ...}."""
        return self.interpolation_for_attribute("versions")

    @property
    def invocation_urls(self) -> cdktf.StringMap:
        return cdktf.StringMap(self, "invocation_urls")
