"""The Databricks SDK's calls that needed routes or fields of their own: `model_registry.get_model`,
`serving_endpoints.get_open_api`, the caller's `permission_level`, and `description` / `route_optimized`."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from rtserve.server.client import BackendClient
from rtserve.server.demo import request_bodies
from rtserve.server.demo_model import register_demo_model
from rtserve.server.process import BackendProcess
from tests.tokens import create_token

pytestmark = pytest.mark.api
MODEL = "iris-sdk-routes"
ENDPOINT = "sdk-routes"
COLUMNS = request_bodies()["dataframe_split"][1]["dataframe_split"]["columns"]


def workspace(backend: BackendProcess, token: str):
    from databricks.sdk import WorkspaceClient

    return WorkspaceClient(host=backend.url, token=token, auth_type="pat")


@pytest.fixture(scope="module")
def endpoint(backend: BackendProcess, admin: BackendClient, mlflow_client_env: str) -> Iterator[str]:
    from databricks.sdk.service.serving import EndpointCoreConfigInput, ServedEntityInput

    register_demo_model(mlflow_client_env, name=MODEL, versions=1)
    served = ServedEntityInput(entity_name=MODEL, entity_version="1", name="current", workload_size="Small")
    workspace(backend, backend.admin_token).serving_endpoints.create(
        ENDPOINT,
        config=EndpointCoreConfigInput(name=ENDPOINT, served_entities=[served]),
        description="Iris for the SDK",
        route_optimized=True,
    )
    yield ENDPOINT
    admin.http.delete(f"/api/2.0/serving-endpoints/{ENDPOINT}")


def test_get_model_answers_the_registered_model_and_the_callers_permission(backend: BackendProcess, endpoint: str):
    from databricks.sdk.errors import NotFound

    model = workspace(backend, backend.admin_token).model_registry.get_model(MODEL).registered_model_databricks

    assert model.name == MODEL and model.permission_level.value == "CAN_MANAGE"
    assert model.creation_timestamp and model.latest_versions[0].version == "1"
    viewer, _ = create_token(backend, "CAN_VIEW")
    as_viewer = workspace(backend, viewer).model_registry.get_model(MODEL).registered_model_databricks
    assert as_viewer.permission_level.value == "CAN_READ"
    with pytest.raises(NotFound):
        workspace(backend, viewer).model_registry.get_model("no-such-model")


def test_the_endpoint_answers_description_route_optimized_and_the_callers_permission(
    backend: BackendProcess, admin: BackendClient, endpoint: str
):
    detail = workspace(backend, backend.admin_token).serving_endpoints.get(endpoint)
    assert detail.description == "Iris for the SDK" and detail.route_optimized is True
    assert detail.permission_level.value == "CAN_MANAGE"

    viewer, _ = create_token(backend, "CAN_VIEW", name="sdk-routes-reader")
    assert workspace(backend, viewer).serving_endpoints.get(endpoint).permission_level.value == "CAN_VIEW"
    endpoint_id = detail.id
    granted = admin.http.patch(
        f"/api/2.0/permissions/serving-endpoints/{endpoint_id}",
        json={"access_control_list": [{"user_name": "sdk-routes-reader", "permission_level": "CAN_QUERY"}]},
    )
    assert granted.status_code == 200, granted.text
    assert workspace(backend, viewer).serving_endpoints.get(endpoint).permission_level.value == "CAN_QUERY"
    listed = admin.http.get("/api/2.0/serving-endpoints", headers={"Authorization": f"Bearer {viewer}"}).json()
    assert {e["name"]: e["permission_level"] for e in listed["endpoints"]}[endpoint] == "CAN_QUERY"


def test_get_open_api_describes_the_scoring_paths_from_the_signature(backend: BackendProcess, endpoint: str):
    answer = workspace(backend, backend.admin_token).serving_endpoints.get_open_api(endpoint)
    document = json.loads(answer.contents.read())

    assert document["openapi"].startswith("3.1")
    assert document["servers"][0]["url"] == f"{backend.url}/serving-endpoints/{endpoint}"
    assert set(document["paths"]) == {"/invocations", "/served-models/current/invocations"}
    body = document["paths"]["/invocations"]["post"]["requestBody"]["content"]["application/json"]
    split = body["schema"]["oneOf"][0]["properties"]["dataframe_split"]["properties"]
    assert split["columns"]["const"] == COLUMNS
    assert split["data"]["items"]["prefixItems"] == [{"type": "number"}] * 4
    assert body["example"]["dataframe_split"]["columns"] == COLUMNS  # the logged input example


def test_get_open_api_of_an_unknown_endpoint_is_a_404(admin: BackendClient):
    response = admin.http.get("/api/2.0/serving-endpoints/no-such-endpoint/openapi")
    assert response.status_code == 404 and response.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
