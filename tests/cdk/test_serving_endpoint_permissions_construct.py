"""ServingEndpointPermissions: what it synthesizes (props and defaults), and one test per validation message."""

from __future__ import annotations

import re

import cdktf
import pytest

from rtserve.cdk import (
    AccessControl,
    PermissionLevel,
    RtserveStack,
    ServedEntity,
    ServingEndpoint,
    ServingEndpointPermissions,
)
from tests.cdk.conftest import only, synth

pytestmark = pytest.mark.unit
TYPE = "rtserve_permissions"


def endpoint(stack: RtserveStack) -> ServingEndpoint:
    return ServingEndpoint(stack, "iris", name="iris", served_entities=[ServedEntity("iris-classifier", 1)])


# -- synthesis -------------------------------------------------------------------------------------
def test_grants_on_a_serving_endpoint_synthesize_one_resource_referring_to_its_id(stack: RtserveStack) -> None:
    iris = endpoint(stack)
    ServingEndpointPermissions(
        stack,
        "iris-acl",
        endpoint=iris,
        access_control=[
            AccessControl.user("checkout", PermissionLevel.CAN_QUERY),
            AccessControl.group("users", "CAN_VIEW"),
            AccessControl.service_principal("ci", PermissionLevel.CAN_MANAGE),
        ],
    )
    address = f"rtserve_serving_endpoint.{iris.resource.friendly_unique_id}"
    assert only(synth(stack), TYPE) == {
        "serving_endpoint_id": f"${{{address}.endpoint_id}}",
        "access_control": [
            {"permission_level": "CAN_QUERY", "user_name": "checkout"},
            {"permission_level": "CAN_VIEW", "group_name": "users"},
            {"permission_level": "CAN_MANAGE", "service_principal_name": "ci"},
        ],
    }


def test_an_endpoint_id_may_be_given_directly(stack: RtserveStack) -> None:
    ServingEndpointPermissions(
        stack, "acl", endpoint="0f3c9a", access_control=[AccessControl(PermissionLevel.CAN_VIEW, user_name="a")]
    )
    assert only(synth(stack), TYPE)["serving_endpoint_id"] == "0f3c9a"


def test_references_are_left_to_terraform(stack: RtserveStack) -> None:
    token_name = cdktf.TerraformVariable(stack, "consumer", type="string").string_value
    ServingEndpointPermissions(
        stack,
        "acl",
        endpoint=endpoint(stack),
        access_control=[AccessControl.user(token_name, "CAN_QUERY"), AccessControl.user(token_name, "CAN_VIEW")],
    )
    assert only(synth(stack), TYPE)["access_control"][0]["user_name"] == "${var.consumer}"


def test_the_object_id_is_a_reference(stack: RtserveStack) -> None:
    acl = ServingEndpointPermissions(
        stack, "acl", endpoint=endpoint(stack), access_control=[AccessControl.group("users", "CAN_QUERY")]
    )
    cdktf.TerraformOutput(stack, "object", value=acl.object_id)
    address = f"{TYPE}.{acl.resource.friendly_unique_id}"
    assert synth(stack)["output"]["object"]["value"] == f"${{{address}.id}}"


# -- validation ------------------------------------------------------------------------------------
def fails(stack: RtserveStack, message: str, error: type[Exception] = ValueError, **props: object) -> None:
    arguments: dict = {"endpoint": endpoint(stack), "access_control": [AccessControl.user("a", "CAN_QUERY")]}
    with pytest.raises(error, match=re.escape(message)):
        ServingEndpointPermissions(stack, "acl", **(arguments | props))


def test_at_least_one_grant(stack: RtserveStack) -> None:
    fails(stack, "ServingEndpointPermissions: access_control needs at least one AccessControl", access_control=[])


def test_grants_must_be_access_control_objects(stack: RtserveStack) -> None:
    fails(
        stack,
        "ServingEndpointPermissions: access_control[0] must be an AccessControl; got {'user_name': 'a'}",
        TypeError,
        access_control=[{"user_name": "a"}],
    )


def test_a_principal_gets_one_level(stack: RtserveStack) -> None:
    fails(
        stack,
        "ServingEndpointPermissions: user_name 'a' is granted twice (CAN_VIEW and CAN_MANAGE)",
        access_control=[AccessControl.user("a", "CAN_VIEW"), AccessControl.user("a", "CAN_MANAGE")],
    )


def test_the_endpoint_is_a_serving_endpoint_or_an_id(stack: RtserveStack) -> None:
    fails(stack, "ServingEndpointPermissions: endpoint must be a ServingEndpoint or an endpoint id", endpoint="")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"level": "CAN_QUERY"},
            "AccessControl: name exactly one of user_name, group_name, service_principal_name; got none",
        ),
        (
            {"level": "CAN_QUERY", "user_name": "a", "group_name": "users"},
            "AccessControl: name exactly one of user_name, group_name, service_principal_name; got user_name, "
            "group_name",
        ),
        ({"level": "CAN_QUERY", "user_name": " "}, "AccessControl: user_name must be a non-empty string; got ' '"),
        (
            {"level": "IS_OWNER", "user_name": "a"},
            "AccessControl: level must be one of CAN_VIEW, CAN_QUERY, CAN_MANAGE; got 'IS_OWNER'",
        ),
        (
            {"level": "CAN_VIEW", "group_name": "admins"},
            "AccessControl: the group 'admins' always manages every endpoint and cannot be granted to",
        ),
    ],
)
def test_an_access_control_checks_itself(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        AccessControl(**kwargs)


def test_nothing_is_created_when_validation_fails(stack: RtserveStack) -> None:
    with pytest.raises(ValueError):
        ServingEndpointPermissions(stack, "acl", endpoint=endpoint(stack), access_control=[])
    assert TYPE not in synth(stack).get("resource", {})
