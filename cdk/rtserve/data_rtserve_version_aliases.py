"""`data "rtserve_version_aliases"`: which version each stage URL answers from now."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Unpack

from constructs import Construct

from rtserve.cdk._framework import cdktf
from rtserve.cdk.rtserve._base import MetaArguments, generator_metadata


class DataRtserveVersionAliases(cdktf.TerraformDataSource):
    TF_RESOURCE_TYPE = "rtserve_version_aliases"

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
    def aliases(self) -> cdktf.StringMap:
        return cdktf.StringMap(self, "aliases")
