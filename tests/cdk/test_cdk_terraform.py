"""Synthesized constructs, applied by the embedded Terraform with the real provider against the real app
(fake engine): the construct's rendering is valid for the provider's schema and leaves no perpetual diff."""

from __future__ import annotations

import os
from pathlib import Path

import cdktf
import pytest

from rtserve.cdk import (
    AccessControl,
    ComputeConfig,
    ModelEndpoint,
    PermissionLevel,
    RateLimit,
    RtserveStack,
    ServedEntity,
    ServingEndpoint,
    ServingEndpointPermissions,
)
from rtserve.cdk.rtserve import DataRtserveEndpointStatus, DataRtserveModelVersions, DataRtserveVersionAliases
from rtserve.provider.install import install
from rtserve.provider.terraform import Terraform
from tests.provider.terraform_helpers import served_app

pytestmark = pytest.mark.e2e


def test_a_model_endpoint_applies_and_plans_empty_afterwards(tmp_path: Path) -> None:
    with served_app(tmp_path, "iris-classifier", versions=2) as backend:
        url = backend.url
        app = cdktf.App(outdir=str(tmp_path / "out"))
        stack = RtserveStack(app, "production", host=url, state_path=str(tmp_path / "production.tfstate"))
        endpoint = ModelEndpoint(
            stack,
            "iris",
            model_name="iris-classifier",
            staging=ComputeConfig.small(scale_to_zero=True),
            production=ComputeConfig.medium(),
            promotions={"Production": "1", "Staging": 2},
            comment="from cdktf",
        )
        versions = DataRtserveModelVersions(stack, "versions", name="iris-classifier", depends_on=endpoint.resources)
        status = DataRtserveEndpointStatus(
            stack, "status", registered_model_name="iris-classifier", depends_on=endpoint.resources
        )
        aliases = DataRtserveVersionAliases(
            stack, "aliases", registered_model_name="iris-classifier", depends_on=endpoint.resources
        )
        cdktf.TerraformOutput(stack, "production_url", value=endpoint.production_url)
        cdktf.TerraformOutput(stack, "latest", value=versions.latest_version)
        cdktf.TerraformOutput(stack, "enabled", value=status.enabled)
        cdktf.TerraformOutput(stack, "production_version", value=aliases.aliases.lookup("Production"))
        app.synth()

        tf = Terraform(
            tmp_path / "out" / "stacks" / "production",
            install(tmp_path / "mirror"),
            env={"RTSERVE_TOKEN": backend.token},
            check=True,
        )
        tf.init()
        assert str(tf.apply().summary) == "3 to add, 0 to change, 0 to destroy"
        assert backend.endpoints()["iris-classifier"] == {
            "Staging": {"workload_size_id": "Small", "scale_to_zero_enabled": True},
            "Production": {"workload_size_id": "Medium", "scale_to_zero_enabled": False},
        }
        assert backend.stages("iris-classifier") == {"1": "Production", "2": "Staging"}
        assert tf.output() == {
            "production_url": f"{url}/model-endpoint/iris-classifier/Production/invocations",
            "latest": "2",
            "enabled": True,
            "production_version": "1",
        }
        assert not tf.plan().summary.has_changes
        tf.destroy()
        assert backend.endpoints() == {}
        assert set(backend.stages("iris-classifier").values()) == {"Archived"}
    assert "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION" in os.environ


def test_a_limited_serving_endpoint_and_its_permissions_apply_and_plan_empty_afterwards(tmp_path: Path) -> None:
    with served_app(tmp_path, "iris-classifier", versions=2) as backend:
        url = backend.url
        app = cdktf.App(outdir=str(tmp_path / "out"))
        stack = RtserveStack(app, "ab", host=url, state_path=str(tmp_path / "ab.tfstate"))
        single = ServingEndpoint(stack, "single", name="single", served_entities=[ServedEntity("iris-classifier", 1)])
        split = ServingEndpoint(
            stack,
            "split",
            name="split",
            served_entities=[
                ServedEntity("iris-classifier", "1", name="blue"),
                ServedEntity("iris-classifier", "2", name="green", scale_to_zero=True),
            ],
            traffic={"blue": 90, "green": 10},
            tags={"team": "ml"},
            rate_limits=[RateLimit(calls=100), RateLimit(calls=10, key="user")],
        )
        ServingEndpointPermissions(
            stack,
            "split-acl",
            endpoint=split,
            access_control=[
                AccessControl.user("alice", PermissionLevel.CAN_QUERY),
                AccessControl.group("users", PermissionLevel.CAN_VIEW),
            ],
        )
        cdktf.TerraformOutput(stack, "single_url", value=single.endpoint_url)
        cdktf.TerraformOutput(stack, "split_ready", value=split.state_ready)
        app.synth()

        tf = Terraform(
            tmp_path / "out" / "stacks" / "ab",
            install(tmp_path / "mirror"),
            env={"RTSERVE_TOKEN": backend.token},
            check=True,
        )
        tf.init()
        assert str(tf.apply().summary) == "3 to add, 0 to change, 0 to destroy"
        assert backend.serving_endpoints()["split"]["acl"] == [
            {"group_name": "users", "permission_level": "CAN_VIEW"},
            {"user_name": "alice", "permission_level": "CAN_QUERY"},
        ]
        assert backend.serving_endpoints()["split"]["config"]["routes"] == [
            {"served_model_name": "blue", "traffic_percentage": 90},
            {"served_model_name": "green", "traffic_percentage": 10},
        ]
        assert backend.serving_endpoints()["single"]["config"]["served_entities"][0]["name"] == "iris-classifier-1"
        assert sorted(limit["calls"] for limit in backend.serving_endpoints()["split"]["rate_limits"]) == [10, 100]
        assert tf.output() == {"single_url": f"{url}/serving-endpoints/single/invocations", "split_ready": "READY"}
        assert not tf.plan().summary.has_changes
        tf.destroy()
        assert backend.serving_endpoints() == {}
