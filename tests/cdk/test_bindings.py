"""The level-1 bindings: attribute names match the provider's schema, None leaves attributes out."""

from __future__ import annotations

import cdktf
import pytest

from rtserve.cdk import RtserveStack
from rtserve.cdk.rtserve import (
    DataRtserveEndpointStatus,
    DataRtserveModelVersions,
    DataRtserveVersionAliases,
    ModelServing,
    ModelServingComputeConfig,
    ModelVersionStage,
    Permissions,
    PermissionsAccessControl,
    ServingEndpoint,
    ServingEndpointEmailNotifications,
    ServingEndpointInferenceTableConfig,
    ServingEndpointRateLimits,
    ServingEndpointServedEntities,
    ServingEndpointTrafficConfig,
    ServingEndpointTrafficConfigRoutes,
    ServingEndpointUsageTrackingConfig,
)
from rtserve.provider.plugin import RtserveProvider
from rtserve.provider.resources.email_notifications import EMAIL_NOTIFICATIONS
from rtserve.provider.resources.inference_tables import INFERENCE_TABLE_CONFIG, USAGE_TRACKING_CONFIG
from rtserve.provider.resources.model_serving import COMPUTE_CONFIG
from rtserve.provider.resources.permissions import ACCESS_CONTROL
from rtserve.provider.resources.rate_limits import RATE_LIMITS
from rtserve.provider.resources.serving_endpoint import SERVED_ENTITIES
from tests.cdk.conftest import only, synth

pytestmark = pytest.mark.unit


def schema_names(type_name: str, kind: str = "resource") -> set[str]:
    provider = RtserveProvider(environ={})
    classes = provider.get_resources() if kind == "resource" else provider.get_data_sources()
    [cls] = [c for c in classes if f"rtserve_{c.get_name()}" == type_name]
    schema = cls.get_schema()
    return {a.name for a in schema.attributes if a.required or a.optional} | {b.type_name for b in schema.block_types}


def test_model_serving_renders_only_what_is_set(stack: RtserveStack) -> None:
    ModelServing(stack, "s", registered_model_name="m", compute_config=[ModelServingComputeConfig("Staging")])
    assert only(synth(stack), "rtserve_model_serving") == {
        "registered_model_name": "m",
        "compute_config": [{"stage": "Staging"}],
    }


def test_model_serving_inputs_are_the_provider_schema(stack: RtserveStack) -> None:
    ModelServing(
        stack,
        "s",
        registered_model_name="m",
        compute_config=[
            ModelServingComputeConfig(
                "Staging", "Large", True, placement_node_labels={"zone": "b"}, placement_resources={"licensed": 1}
            )
        ],
        wait_for_ready=False,
        disable_on_destroy=False,
        timeouts={"create": "1m"},
    )
    resource = only(synth(stack), "rtserve_model_serving")
    assert set(resource) == schema_names("rtserve_model_serving")
    assert set(resource["compute_config"][0]) == {a.name for a in COMPUTE_CONFIG.block.attributes}


def test_model_version_stage_inputs_are_the_provider_schema(stack: RtserveStack) -> None:
    ModelVersionStage(
        stack,
        "p",
        name="m",
        version="1",
        stage="Production",
        archive_existing_versions=True,
        comment="c",
        wait_for_ready=False,
        timeouts={"update": "5m"},
    )
    assert set(only(synth(stack), "rtserve_model_version_stage")) == schema_names("rtserve_model_version_stage")


def test_serving_endpoint_renders_only_what_is_set(stack: RtserveStack) -> None:
    ServingEndpoint(stack, "e", name="e", served_entities=[ServingEndpointServedEntities("m", "1")])
    assert only(synth(stack), "rtserve_serving_endpoint") == {
        "name": "e",
        "served_entities": [{"entity_name": "m", "entity_version": "1"}],
    }


def test_serving_endpoint_inputs_are_the_provider_schema(stack: RtserveStack) -> None:
    ServingEndpoint(
        stack,
        "e",
        name="e",
        served_entities=[
            # Every attribute, to check the binding renders each (the provider refuses a size with a range).
            ServingEndpointServedEntities(
                "m",
                "1",
                name="a",
                workload_size="Large",
                scale_to_zero_enabled=True,
                min_provisioned_concurrency=4,
                max_provisioned_concurrency=8,
                environment_policy="isolated",
                environment_vars={"API_TOKEN": "{{secrets/team/token}}"},
                placement_node_labels={"zone": "b"},
                placement_resources={"licensed": 1},
            ),
            {"entity_name": "m", "entity_version": "2", "name": "b"},
        ],
        traffic_config=ServingEndpointTrafficConfig(
            routes=[ServingEndpointTrafficConfigRoutes("a", 60), {"served_model_name": "b", "traffic_percentage": 40}]
        ),
        tags={"team": "ml"},
        rate_limits=[ServingEndpointRateLimits(100), {"calls": 5, "key": "user", "principal": "ci"}],
        timeouts={"create": "1m"},
        description="Iris",
        route_optimized=True,
        email_notifications=ServingEndpointEmailNotifications(on_update_failure=("ops@example.com",)),
        auto_capture_config={"catalog_name": "main", "schema_name": "legacy", "enabled": False},
        inference_table_config=ServingEndpointInferenceTableConfig("main", "serving"),
        usage_tracking_config=ServingEndpointUsageTrackingConfig(enabled=True),
    )
    resource = only(synth(stack), "rtserve_serving_endpoint")
    assert set(resource) == schema_names("rtserve_serving_endpoint")
    assert resource["rate_limits"] == [{"calls": 100}, {"calls": 5, "key": "user", "principal": "ci"}]
    assert set(ServingEndpointRateLimits.__dataclass_fields__) == {a.name for a in RATE_LIMITS.block.attributes}
    assert resource["traffic_config"] == {
        "routes": [
            {"served_model_name": "a", "traffic_percentage": 60},
            {"served_model_name": "b", "traffic_percentage": 40},
        ]
    }
    assert set(resource["served_entities"][0]) == {a.name for a in SERVED_ENTITIES.block.attributes}
    assert resource["email_notifications"] == {"on_update_failure": ["ops@example.com"]}
    assert set(ServingEndpointEmailNotifications.__dataclass_fields__) == {
        a.name for a in EMAIL_NOTIFICATIONS.block.attributes
    }
    assert resource["inference_table_config"] == {"catalog_name": "main", "schema_name": "serving"}
    assert resource["usage_tracking_config"] == {"enabled": True}
    assert set(ServingEndpointInferenceTableConfig.__dataclass_fields__) == {
        a.name for a in INFERENCE_TABLE_CONFIG.block.attributes
    }
    assert set(ServingEndpointUsageTrackingConfig.__dataclass_fields__) == {
        a.name for a in USAGE_TRACKING_CONFIG.block.attributes
    }


def test_permissions_renders_only_what_is_set(stack: RtserveStack) -> None:
    Permissions(stack, "p", serving_endpoint_id="id-1", access_control=[PermissionsAccessControl("CAN_QUERY", "a")])
    assert only(synth(stack), "rtserve_permissions") == {
        "serving_endpoint_id": "id-1",
        "access_control": [{"permission_level": "CAN_QUERY", "user_name": "a"}],
    }


def test_permissions_inputs_are_the_provider_schema(stack: RtserveStack) -> None:
    endpoint = ServingEndpoint(stack, "e", name="e", served_entities=[ServingEndpointServedEntities("m", "1")])
    permissions = Permissions(
        stack,
        "p",
        serving_endpoint_id=endpoint.endpoint_id,
        access_control=[
            PermissionsAccessControl("CAN_MANAGE", service_principal_name="ci"),
            {"group_name": "users", "permission_level": "CAN_VIEW"},
        ],
    )
    cdktf.TerraformOutput(stack, "object", value=permissions.object_type)
    document = synth(stack)
    resource = only(document, "rtserve_permissions")
    assert set(resource) == schema_names("rtserve_permissions")
    assert resource["serving_endpoint_id"] == "${rtserve_serving_endpoint.e.endpoint_id}"
    assert resource["access_control"] == [
        {"permission_level": "CAN_MANAGE", "service_principal_name": "ci"},
        {"group_name": "users", "permission_level": "CAN_VIEW"},
    ]
    block_fields = {a.name for a in ACCESS_CONTROL.block.attributes}
    assert {f for f in PermissionsAccessControl.__dataclass_fields__} == block_fields
    assert document["output"]["object"]["value"] == "${rtserve_permissions.p.object_type}"


@pytest.mark.parametrize(
    ("cls", "type_name", "kwargs"),
    [
        (DataRtserveEndpointStatus, "rtserve_endpoint_status", {"registered_model_name": "m"}),
        (DataRtserveModelVersions, "rtserve_model_versions", {"name": "m"}),
        (DataRtserveVersionAliases, "rtserve_version_aliases", {"registered_model_name": "m"}),
    ],
)
def test_data_source_inputs_are_the_provider_schema(stack: RtserveStack, cls, type_name, kwargs) -> None:  # type: ignore[no-untyped-def]
    cls(stack, "d", **kwargs)
    assert set(only(synth(stack), type_name, kind="data")) == schema_names(type_name, kind="data")


def test_data_source_attributes_are_references(stack: RtserveStack) -> None:
    import cdktf

    versions = DataRtserveModelVersions(stack, "v", name="m")
    aliases = DataRtserveVersionAliases(stack, "a", registered_model_name="m")
    cdktf.TerraformOutput(stack, "latest", value=versions.latest_version)
    cdktf.TerraformOutput(stack, "production", value=aliases.aliases.lookup("Production"))
    outputs = synth(stack)["output"]
    assert outputs["latest"]["value"] == "${data.rtserve_model_versions.v.latest_version}"
    assert outputs["production"]["value"] == '${data.rtserve_version_aliases.a.aliases["Production"]}'
