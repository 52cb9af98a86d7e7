"""`rtserve_serving_endpoint`: a named serving endpoint, serving model versions with a traffic split."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, is_dataclass
from typing import Any, Unpack

from constructs import Construct

from rtserve.cdk._framework import cdktf
from rtserve.cdk.rtserve._base import MetaArguments, block, blocks, generator_metadata, without_none


@dataclass(frozen=True)
class ServingEndpointServedEntities:
    """One `served_entities` block. None leaves the provider's default (name `<entity_name>-<entity_version>`,
    Small, no scale to zero)."""

    entity_name: str
    entity_version: str
    name: str | None = None
    workload_size: str | None = None
    scale_to_zero_enabled: bool | None = None
    min_provisioned_concurrency: int | None = None
    max_provisioned_concurrency: int | None = None
    environment_policy: str | None = None
    environment_vars: Mapping[str, str] | None = field(default=None, hash=False)
    placement_node_labels: Mapping[str, str] | None = field(default=None, hash=False)
    placement_resources: Mapping[str, int | float] | None = field(default=None, hash=False)


@dataclass(frozen=True)
class ServingEndpointTrafficConfigRoutes:
    """One route of `traffic_config`: the share of requests a served entity gets."""

    served_model_name: str
    traffic_percentage: int | float


@dataclass(frozen=True)
class ServingEndpointTrafficConfig:
    """The `traffic_config` attribute: routes summing to 100."""

    routes: Sequence[ServingEndpointTrafficConfigRoutes | Mapping[str, Any]]


@dataclass(frozen=True)
class ServingEndpointRateLimits:
    """One `rate_limits` block: `calls` per minute for the endpoint (key `endpoint`) or per token (key `user` or
    `service_principal`, optionally for one `principal`). None leaves the provider's default (key `endpoint`,
    renewal_period `minute`)."""

    calls: int
    key: str | None = None
    principal: str | None = None
    renewal_period: str | None = None


@dataclass(frozen=True)
class ServingEndpointEmailNotifications:
    """The `email_notifications` block: addresses e-mailed when a config update fails or succeeds."""

    on_update_failure: Sequence[str] | None = None
    on_update_success: Sequence[str] | None = None


@dataclass(frozen=True)
class ServingEndpointInferenceTableConfig:
    """The `auto_capture_config` or `inference_table_config` block: the Delta table requests are logged to.
    None leaves the provider's default (prefix: the endpoint's name; enabled: true)."""

    catalog_name: str
    schema_name: str
    table_name_prefix: str | None = None
    enabled: bool | None = None


@dataclass(frozen=True)
class ServingEndpointUsageTrackingConfig:
    """The `usage_tracking_config` block: one usage row per request."""

    enabled: bool


@dataclass(frozen=True)
class ServingEndpointTimeouts:
    """The `timeouts` block: Go durations such as "20m"."""

    create: str | None = None
    update: str | None = None


def _traffic_config(value: ServingEndpointTrafficConfig | Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The attribute as Terraform JSON: `{"routes": [{"served_model_name", "traffic_percentage"}]}`."""
    if value is None:
        return None
    # Each route: a ServingEndpointTrafficConfigRoutes (or any dataclass instance) or a mapping.
    routes: Sequence[Any] = value.routes if isinstance(value, ServingEndpointTrafficConfig) else value["routes"]
    return {"routes": [asdict(r) if is_dataclass(r) and not isinstance(r, type) else dict(r) for r in routes]}


def _email_notifications(value: ServingEndpointEmailNotifications | Mapping[str, Any] | None) -> Any:
    """The block as Terraform JSON, each list as a plain list."""
    rendered = block(value)
    return None if rendered is None else {key: list(addresses) for key, addresses in rendered.items()}


class ServingEndpoint(cdktf.TerraformResource):
    """`rtserve_serving_endpoint` (see docs/provider.md for every attribute)."""

    TF_RESOURCE_TYPE = "rtserve_serving_endpoint"

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        name: str,
        served_entities: Sequence[ServingEndpointServedEntities | Mapping[str, Any]],
        traffic_config: ServingEndpointTrafficConfig | Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
        rate_limits: Sequence[ServingEndpointRateLimits | Mapping[str, Any]] | None = None,
        timeouts: ServingEndpointTimeouts | Mapping[str, Any] | None = None,
        description: str | None = None,
        route_optimized: bool | None = None,
        email_notifications: ServingEndpointEmailNotifications | Mapping[str, Any] | None = None,
        auto_capture_config: ServingEndpointInferenceTableConfig | Mapping[str, Any] | None = None,
        inference_table_config: ServingEndpointInferenceTableConfig | Mapping[str, Any] | None = None,
        usage_tracking_config: ServingEndpointUsageTrackingConfig | Mapping[str, Any] | None = None,
        **meta: Unpack[MetaArguments],
    ) -> None:
        super().__init__(
            scope,
            id_,
            terraform_resource_type=self.TF_RESOURCE_TYPE,
            terraform_generator_metadata=generator_metadata(),
            **meta,
        )
        self.endpoint_name = name
        self.served_entities = list(served_entities)
        self.traffic_config = traffic_config
        self.tags = dict(tags) if tags is not None else None
        self.rate_limits = list(rate_limits) if rate_limits is not None else None
        self.timeouts = timeouts
        self.description = description
        self.route_optimized = route_optimized
        self.email_notifications = email_notifications
        self.auto_capture_config = auto_capture_config
        self.inference_table_config = inference_table_config
        self.usage_tracking_config = usage_tracking_config

    def _synthesize_attributes(self) -> Mapping[str, Any]:
        return without_none(
            {
                "name": self.endpoint_name,
                "served_entities": blocks(self.served_entities),
                "traffic_config": _traffic_config(self.traffic_config),
                "tags": self.tags,
                "description": self.description,
                "route_optimized": self.route_optimized,
                "rate_limits": blocks(self.rate_limits),
                "email_notifications": _email_notifications(self.email_notifications),
                "auto_capture_config": block(self.auto_capture_config),
                "inference_table_config": block(self.inference_table_config),
                "usage_tracking_config": block(self.usage_tracking_config),
                "timeouts": block(self.timeouts),
            }
        )

    # -- attributes ------------------------------------------------------------------------------
    @property
    def id(self) -> str:
        return self.get_string_attribute("id")

    @property
    def endpoint_id(self) -> str:
        return self.get_string_attribute("endpoint_id")

    @property
    def endpoint_url(self) -> str:
        """`<host>/serving-endpoints/<name>/invocations`."""
        return self.get_string_attribute("endpoint_url")

    @property
    def config_version(self) -> float:
        return self.get_number_attribute("config_version")

    @property
    def state_ready(self) -> str:
        return self.get_string_attribute("state_ready")

    @property
    def state_config_update(self) -> str:
        return self.get_string_attribute("state_config_update")
