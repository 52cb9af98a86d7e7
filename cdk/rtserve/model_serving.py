"""`rtserve_model_serving`: serving of one registered model, with compute per stage."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Unpack

from constructs import Construct

from rtserve.cdk._framework import cdktf
from rtserve.cdk.rtserve._base import MetaArguments, block, blocks, generator_metadata, without_none


@dataclass(frozen=True)
class ModelServingComputeConfig:
    """One `compute_config` block. None leaves the provider's default (Small, no scale to zero, any node)."""

    stage: str
    workload_size: str | None = None
    scale_to_zero_enabled: bool | None = None
    placement_node_labels: Mapping[str, str] | None = field(default=None, hash=False)
    placement_resources: Mapping[str, int | float] | None = field(default=None, hash=False)


@dataclass(frozen=True)
class ModelServingTimeouts:
    """The `timeouts` block: Go durations such as "20m"."""

    create: str | None = None
    update: str | None = None


class ModelServing(cdktf.TerraformResource):
    """`rtserve_model_serving` (see docs/provider.md for every attribute)."""

    TF_RESOURCE_TYPE = "rtserve_model_serving"

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        registered_model_name: str,
        compute_config: Sequence[ModelServingComputeConfig | Mapping[str, Any]] | None = None,
        wait_for_ready: bool | None = None,
        disable_on_destroy: bool | None = None,
        timeouts: ModelServingTimeouts | Mapping[str, Any] | None = None,
        **meta: Unpack[MetaArguments],
    ) -> None:
        super().__init__(
            scope,
            id_,
            terraform_resource_type=self.TF_RESOURCE_TYPE,
            terraform_generator_metadata=generator_metadata(),
            **meta,
        )
        self.registered_model_name = registered_model_name
        self.compute_config = list(compute_config) if compute_config is not None else None
        self.wait_for_ready = wait_for_ready
        self.disable_on_destroy = disable_on_destroy
        self.timeouts = timeouts

    def _synthesize_attributes(self) -> Mapping[str, Any]:
        return without_none(
            {
                "registered_model_name": self.registered_model_name,
                "compute_config": blocks(self.compute_config),
                "wait_for_ready": self.wait_for_ready,
                "disable_on_destroy": self.disable_on_destroy,
                "timeouts": block(self.timeouts),
            }
        )

    # -- attributes ------------------------------------------------------------------------------
    @property
    def id(self) -> str:
        return self.get_string_attribute("id")

    @property
    def state(self) -> str:
        return self.get_string_attribute("state")

    @property
    def state_message(self) -> str:
        return self.get_string_attribute("state_message")

    @property
    def invocation_urls(self) -> cdktf.StringMap:
        """Stage -> scoring URL; `.lookup("Production")` gives one URL."""
        return cdktf.StringMap(self, "invocation_urls")

    @property
    def version_invocation_urls(self) -> cdktf.StringMap:
        """Served version -> scoring URL."""
        return cdktf.StringMap(self, "version_invocation_urls")
