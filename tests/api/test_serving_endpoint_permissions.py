"""The permissions API of serving endpoints, on a live backend: grants, enforcement, errors, Databricks' SDK."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from rtserve.server.client import BackendClient
from rtserve.server.demo import request_bodies
from rtserve.server.demo_model import register_demo_model
from rtserve.server.process import BackendProcess
from tests.tokens import create_token

pytestmark = pytest.mark.api
IRIS = request_bodies()["dataframe_split"][1]
MODEL = "iris-acl"
PERMISSIONS = "/api/2.0/permissions/serving-endpoints"


@pytest.fixture(scope="module")
def endpoint(admin: BackendClient, mlflow_client_env: str) -> dict:
    register_demo_model(mlflow_client_env, name=MODEL, versions=1)
    served = {"entity_name": MODEL, "entity_version": "1", "workload_size": "Small", "scale_to_zero_enabled": False}
    admin.create_serving_endpoint("acl-endpoint", {"served_entities": [served]})
    return admin.wait_serving_settled("acl-endpoint", timeout=120)


class Caller:
    """A token, by name, calling the backend over HTTP."""

    def __init__(self, backend: BackendProcess, permission: str) -> None:
        self.name = f"acl-{permission.lower()}-{uuid.uuid4().hex[:6]}"
        self.token, _ = create_token(backend, permission, name=self.name)
        self.url = backend.url

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"}
        return httpx.request(method, f"{self.url}{path}", headers=headers, timeout=30, **kwargs)

    def query(self) -> int:
        return self.call("POST", "/serving-endpoints/acl-endpoint/invocations", json=IRIS).status_code


def grant(admin: BackendClient, endpoint_id: str, method: str, *entries: tuple[str, str, str]) -> dict:
    acl = [{kind: principal, "permission_level": level} for kind, principal, level in entries]
    return admin.call(method, f"{PERMISSIONS}/{endpoint_id}", json={"access_control_list": acl})


def direct(response: dict) -> dict[str, str]:
    """Principal -> level of the grants made on the endpoint itself (not inherited)."""
    found = {}
    for entry in response["access_control_list"]:
        principal = entry.get("user_name") or entry.get("group_name") or entry.get("service_principal_name")
        for permission in entry["all_permissions"]:
            if not permission["inherited"]:
                found[principal] = permission["permission_level"]
    return found


def test_the_creator_manages_what_it_created_and_admins_manage_everything(admin: BackendClient, endpoint: dict):
    response = admin.call("GET", f"{PERMISSIONS}/{endpoint['id']}")

    assert response["object_id"] == f"/serving-endpoints/{endpoint['id']}"
    assert direct(response) == {endpoint["creator"]: "CAN_MANAGE"}
    admins = next(e for e in response["access_control_list"] if e.get("group_name") == "admins")
    assert admins["all_permissions"] == [
        {"permission_level": "CAN_MANAGE", "inherited": True, "inherited_from_object": ["/serving-endpoints/"]}
    ]
    levels = admin.call("GET", f"{PERMISSIONS}/{endpoint['id']}/permissionLevels")["permission_levels"]
    assert [level["permission_level"] for level in levels] == ["CAN_VIEW", "CAN_QUERY", "CAN_MANAGE"]


def test_a_grant_lets_a_view_token_query_one_endpoint_and_put_takes_it_back(
    backend: BackendProcess, admin: BackendClient, endpoint: dict
):
    consumer = Caller(backend, "CAN_VIEW")
    assert consumer.query() == 403
    refused = consumer.call("POST", "/serving-endpoints/acl-endpoint/invocations", json=IRIS).json()
    assert refused["error_code"] == "PERMISSION_DENIED" and endpoint["id"] in refused["message"]

    granted = grant(admin, endpoint["id"], "PATCH", ("user_name", consumer.name, "CAN_QUERY"))

    assert direct(granted)[consumer.name] == "CAN_QUERY"
    assert direct(granted)[endpoint["creator"]] == "CAN_MANAGE"  # PATCH keeps the other grants
    assert consumer.query() == 200
    served = consumer.call("POST", "/serving-endpoints/acl-endpoint/served-models/iris-acl-1/invocations", json=IRIS)
    assert served.status_code == 200
    # Querying is all it got: managing the endpoint still needs CAN_MANAGE.
    assert (
        consumer.call("PATCH", "/api/2.0/serving-endpoints/acl-endpoint/tags", json={"add_tags": []}).status_code == 403
    )
    assert (
        consumer.call("PATCH", f"{PERMISSIONS}/{endpoint['id']}", json={"access_control_list": []}).status_code == 403
    )

    replaced = grant(admin, endpoint["id"], "PUT", ("user_name", endpoint["creator"], "CAN_MANAGE"))

    assert direct(replaced) == {endpoint["creator"]: "CAN_MANAGE"}
    assert consumer.query() == 403


def test_a_grant_to_the_users_group_reaches_every_token(backend: BackendProcess, admin: BackendClient, endpoint: dict):
    viewer = Caller(backend, "CAN_VIEW")
    assert (
        viewer.call("PATCH", "/api/2.0/serving-endpoints/acl-endpoint/tags", json={"add_tags": []}).status_code == 403
    )

    grant(admin, endpoint["id"], "PATCH", ("group_name", "users", "CAN_MANAGE"))
    try:
        tagged = viewer.call(
            "PATCH", "/api/2.0/serving-endpoints/acl-endpoint/tags", json={"add_tags": [{"key": "team", "value": "x"}]}
        )
        assert tagged.status_code == 200 and {"key": "team", "value": "x"} in tagged.json()["tags"]
        assert viewer.query() == 200
    finally:
        grant(admin, endpoint["id"], "PUT", ("user_name", endpoint["creator"], "CAN_MANAGE"))
    assert viewer.query() == 403


def test_a_query_token_cannot_change_an_endpoint_it_was_not_granted(
    backend: BackendProcess, admin: BackendClient, endpoint: dict
):
    querier = Caller(backend, "CAN_QUERY")

    assert querier.query() == 200
    assert querier.call("GET", f"{PERMISSIONS}/{endpoint['id']}").status_code == 200
    body = {"access_control_list": [{"user_name": querier.name, "permission_level": "CAN_MANAGE"}]}
    refused = querier.call("PATCH", f"{PERMISSIONS}/{endpoint['id']}", json=body)
    assert refused.status_code == 403 and refused.json()["error_code"] == "PERMISSION_DENIED"
    assert querier.call("DELETE", "/api/2.0/serving-endpoints/acl-endpoint").status_code == 403


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (
            {"access_control_list": [{"user_name": "nobody-by-this-name", "permission_level": "CAN_QUERY"}]},
            "does not exist",
        ),
        ({"access_control_list": [{"group_name": "admins", "permission_level": "CAN_VIEW"}]}, "cannot be changed"),
        ({"access_control_list": [{"group_name": "users", "permission_level": "IS_OWNER"}]}, "permission_level"),
        ({"access_control_list": "users"}, "must be a list"),
    ],
)
def test_a_bad_change_is_a_400_and_changes_nothing(admin: BackendClient, endpoint: dict, body: dict, says: str):
    before = admin.call("GET", f"{PERMISSIONS}/{endpoint['id']}")

    response = admin.http.put(f"{PERMISSIONS}/{endpoint['id']}", json=body)

    assert response.status_code == 400, response.text
    assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE" and says in response.json()["message"]
    assert admin.call("GET", f"{PERMISSIONS}/{endpoint['id']}") == before


def test_an_unknown_id_is_a_404_that_says_the_api_takes_ids(admin: BackendClient, endpoint: dict):
    response = admin.http.get(f"{PERMISSIONS}/acl-endpoint")

    assert response.status_code == 404 and response.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert "id" in response.json()["message"] and "not its name" in response.json()["message"]


def test_databricks_sdk_reads_and_changes_permissions_unchanged(
    backend: BackendProcess, admin: BackendClient, endpoint: dict, caplog: pytest.LogCaptureFixture
):
    from databricks.sdk import WorkspaceClient
    from databricks.sdk.service.serving import ServingEndpointAccessControlRequest, ServingEndpointPermissionLevel

    consumer = Caller(backend, "CAN_VIEW")
    client = WorkspaceClient(host=backend.url, token=backend.admin_token, auth_type="pat")

    found = client.serving_endpoints.get("acl-endpoint")
    assert found.id == endpoint["id"]
    changed = client.serving_endpoints.update_permissions(
        found.id,
        access_control_list=[
            ServingEndpointAccessControlRequest(
                user_name=consumer.name, permission_level=ServingEndpointPermissionLevel.CAN_QUERY
            )
        ],
    )
    assert consumer.name in {entry.user_name for entry in changed.access_control_list}
    assert consumer.query() == 200
    levels = client.serving_endpoints.get_permission_levels(found.id).permission_levels
    assert {level.permission_level for level in levels} == set(ServingEndpointPermissionLevel)

    client.serving_endpoints.set_permissions(found.id, access_control_list=[])
    assert direct(client.serving_endpoints.get_permissions(found.id).as_dict()) == {}
    assert consumer.query() == 403
    assert not [r for r in caplog.records if r.levelname == "WARNING"]  # its host metadata probe is answered
