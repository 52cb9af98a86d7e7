"""`rtserve_model_version_stage`: one model version held in one registry stage."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Unpack

from constructs import Construct

from rtserve.cdk._framework import cdktf
from rtserve.cdk.rtserve._base import MetaArguments, block, generator_metadata, without_none


@dataclass(frozen=True)
class ModelVersionStageTimeouts:
    """The `timeouts` block: Go durations such as "20m"."""

    create: str | None = None
    update: str | None = None


class ModelVersionStage(cdktf.TerraformResource):
    """`rtserve_model_version_stage` (see docs/provider.md for every attribute)."""

    TF_RESOURCE_TYPE = "rtserve_model_version_stage"

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        name: str,
        version: str,
        stage: str,
        archive_existing_versions: bool | None = None,
        comment: str | None = None,
        wait_for_ready: bool | None = None,
        timeouts: ModelVersionStageTimeouts | Mapping[str, Any] | None = None,
        **meta: Unpack[MetaArguments],
    ) -> None:
        super().__init__(
            scope,
            id_,
            terraform_resource_type=self.TF_RESOURCE_TYPE,
            terraform_generator_metadata=generator_metadata(),
            **meta,
        )
        self.model_name = name
        self.version = version
        self.stage = stage
        self.archive_existing_versions = archive_existing_versions
        self.comment = comment
        self.wait_for_ready = wait_for_ready
        self.timeouts = timeouts

    def _synthesize_attributes(self) -> Mapping[str, Any]:
        return without_none(
            {
                "name": self.model_name,
                "version": self.version,
                "stage": self.stage,
                "archive_existing_versions": self.archive_existing_versions,
                "comment": self.comment,
                "wait_for_ready": self.wait_for_ready,
                "timeouts": block(self.timeouts),
            }
        )

    @property
    def id(self) -> str:
        return self.get_string_attribute("id")

    @property
    def invocation_url(self) -> str:
        return self.get_string_attribute("invocation_url")

    @property
    def stage_invocation_url(self) -> str:
        return self.get_string_attribute("stage_invocation_url")
