"""`data "rtserve_model_versions"`: a registered model's versions, per stage, and the latest one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Unpack

from constructs import Construct

from rtserve.cdk._framework import cdktf
from rtserve.cdk.rtserve._base import MetaArguments, generator_metadata


class DataRtserveModelVersions(cdktf.TerraformDataSource):
    TF_RESOURCE_TYPE = "rtserve_model_versions"

    def __init__(self, scope: Construct, id_: str, *, name: str, **meta: Unpack[MetaArguments]) -> None:
        super().__init__(
            scope,
            id_,
            terraform_resource_type=self.TF_RESOURCE_TYPE,
            terraform_generator_metadata=generator_metadata(),
            **meta,
        )
        self.model_name = name

    def _synthesize_attributes(self) -> Mapping[str, Any]:
        return {"name": self.model_name}

    @property
    def latest_version(self) -> str:
        return self.get_string_attribute("latest_version")

    @property
    def latest_by_stage(self) -> cdktf.StringMap:
        return cdktf.StringMap(self, "latest_by_stage")

    @property
    def versions_by_stage(self) -> cdktf.IResolvable:
        return self.interpolation_for_attribute("versions_by_stage")

    @property
    def versions(self) -> cdktf.IResolvable:
        return self.interpolation_for_attribute("versions")
