"""Seed 002's GA API: named serving endpoints, traffic splits, config updates, on a live backend."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import httpx
import pytest

from rtserve.server.client import BackendClient
from rtserve.server.demo import request_bodies
from rtserve.server.demo_model import register_demo_model
from rtserve.server.process import BackendProcess
from tests.registry_helpers import register_code_model
from tests.tokens import create_token

pytestmark = pytest.mark.api
IRIS = request_bodies()["dataframe_split"][1]
MODEL = "iris-ga"
API = "/api/2.0/serving-endpoints"


@pytest.fixture(scope="module")
def ga_model(mlflow_client_env: str) -> str:
    register_demo_model(mlflow_client_env, name=MODEL, versions=2)
    return MODEL


@pytest.fixture(scope="module")
def code_models(mlflow_client_env: str) -> dict[str, str]:
    """Models that load slowly and that fail to load, registered once (version 1 each)."""
    names = {"slow_load": "ga-slow-load", "failing_load": "ga-failing-load"}
    for kind, name in names.items():
        register_code_model(name, f"{kind}.py")
    return names


def entity(version: str, name: str | None = None, **extra: Any) -> dict[str, Any]:
    served = {"entity_name": MODEL, "entity_version": version, "workload_size": "Small", "scale_to_zero_enabled": False}
    return {**served, **({"name": name} if name else {}), **extra}


def create(admin: BackendClient, name: str, *entities: dict, routes: list[tuple[str, int]] | None = None) -> dict:
    config: dict[str, Any] = {"served_entities": list(entities)}
    if routes is not None:
        config["traffic_config"] = {"routes": [{"served_model_name": n, "traffic_percentage": p} for n, p in routes]}
    return admin.create_serving_endpoint(name, config)


def wait_settled(admin: BackendClient, name: str) -> dict:
    return admin.wait_serving_settled(name, timeout=120)


def invoke(admin: BackendClient, name: str, served_model: str | None = None, body: Any = IRIS) -> httpx.Response:
    return admin.score_serving(name, body, served_model)


def test_an_endpoint_is_created_pending_then_ready_and_answers_with_its_served_model(
    admin: BackendClient, ga_model: str
):
    created = create(admin, "ga-one", entity("1"))

    assert created["name"] == "ga-one" and created["creator"]
    assert created["state"]["config_update"] == "IN_PROGRESS" and "config" not in created
    pending = created["pending_config"]
    assert pending["config_version"] == 1
    assert pending["served_entities"][0]["name"] == f"{MODEL}-1"  # the default name
    assert pending["traffic_config"]["routes"][0]["traffic_percentage"] == 100
    assert created["endpoint_url"].endswith("/serving-endpoints/ga-one/invocations")

    ready = wait_settled(admin, "ga-one")
    assert "pending_config" not in ready
    served = ready["config"]["served_entities"][0]
    assert served["state"]["deployment"] == "DEPLOYMENT_READY"
    assert ready["config"]["served_models"][0]["model_name"] == MODEL

    response = invoke(admin, "ga-one")
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": [0, 2]}
    assert response.headers["served-model-name"] == f"{MODEL}-1"
    one = invoke(admin, "ga-one", served_model=f"{MODEL}-1")
    assert one.status_code == 200 and one.json() == response.json()
    listed = admin.call("GET", API)["endpoints"]
    assert [e["config"]["served_entities"][0]["entity_version"] for e in listed if e["name"] == "ga-one"] == ["1"]


def test_the_traffic_split_sends_each_served_model_its_share(admin: BackendClient, ga_model: str):
    create(admin, "ga-split", entity("1", "blue"), entity("2", "green"), routes=[("blue", 75), ("green", 25)])
    wait_settled(admin, "ga-split")

    served = Counter(invoke(admin, "ga-split").headers["served-model-name"] for _ in range(400))

    assert set(served) == {"blue", "green"}
    assert 0.65 < served["blue"] / 400 < 0.85  # 75% expected; 400 draws keep this well inside 5 sigma
    only_green = [invoke(admin, "ga-split", served_model="green").headers["served-model-name"] for _ in range(5)]
    assert only_green == ["green"] * 5


def test_a_config_update_rolls_out_without_dropping_a_request(admin: BackendClient, ga_model: str):
    create(admin, "ga-roll", entity("1", "current"))
    wait_settled(admin, "ga-roll")
    outcomes: list[tuple[int, str]] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=admin.host, headers=dict(admin.http.headers), timeout=60) as client:
            while not stop.is_set():
                response = client.post("/serving-endpoints/ga-roll/invocations", json=IRIS)
                outcomes.append((response.status_code, response.headers.get("served-model-name", "")))

    thread = threading.Thread(target=load)
    thread.start()
    try:
        time.sleep(0.5)
        updated = admin.call("PUT", f"{API}/ga-roll/config", json={"served_entities": [entity("2", "next")]})
        assert updated["state"]["config_update"] == "IN_PROGRESS"
        assert updated["pending_config"]["config_version"] == 2
        assert updated["config"]["served_entities"][0]["name"] == "current"  # still serving
        settled = wait_settled(admin, "ga-roll")
        time.sleep(0.5)
    finally:
        stop.set()
        thread.join()

    assert settled["config"]["config_version"] == 2
    assert settled["config"]["served_entities"][0]["name"] == "next"
    assert [status for status, _ in outcomes if status != 200] == []
    names = [name for _, name in outcomes]
    assert names[0] == "current" and names[-1] == "next"
    assert names == sorted(names, key=lambda name: name == "next")  # switched once, never back


def test_a_second_update_while_one_is_in_progress_is_refused_with_409(admin: BackendClient, code_models: dict):
    create(admin, "ga-busy", entity("1"))
    wait_settled(admin, "ga-busy")
    slow = {"entity_name": code_models["slow_load"], "entity_version": "1"}
    admin.call("PUT", f"{API}/ga-busy/config", json={"served_entities": [slow]})  # loads for 4 s

    response = admin.http.put(f"{API}/ga-busy/config", json={"served_entities": [entity("2")]})

    assert response.status_code == 409
    assert response.json()["error_code"] == "RESOURCE_CONFLICT"
    assert "NOT_UPDATING" in response.json()["message"]
    settled = wait_settled(admin, "ga-busy")
    assert settled["config"]["served_entities"][0]["entity_name"] == code_models["slow_load"]


def test_an_update_that_fails_keeps_the_old_config_serving_and_can_be_replaced(admin: BackendClient, code_models: dict):
    create(admin, "ga-fail", entity("1", "good"))
    wait_settled(admin, "ga-fail")
    broken = {"name": "broken", "entity_name": code_models["failing_load"], "entity_version": "1"}
    admin.call("PUT", f"{API}/ga-fail/config", json={"served_entities": [broken]})

    deadline = time.monotonic() + 60
    while (detail := admin.call("GET", f"{API}/ga-fail"))["state"]["config_update"] != "UPDATE_FAILED":
        assert time.monotonic() < deadline, detail
        time.sleep(0.1)

    assert detail["state"]["ready"] == "READY"
    failed = detail["pending_config"]["served_entities"][0]["state"]
    assert failed["deployment"] == "DEPLOYMENT_FAILED"
    assert "weights.bin is missing" in failed["deployment_state_message"]
    response = invoke(admin, "ga-fail")
    assert response.status_code == 200 and response.headers["served-model-name"] == "good"
    fixed = admin.call("PUT", f"{API}/ga-fail/config", json={"served_entities": [entity("2", "fixed")]})
    assert fixed["pending_config"]["config_version"] == 3
    assert wait_settled(admin, "ga-fail")["config"]["served_entities"][0]["name"] == "fixed"


BAD_CREATES = {
    "no name": ({"config": {"served_entities": [entity("1")]}}, 400, "'name'"),
    "bad name": ({"name": "has space", "config": {"served_entities": [entity("1")]}}, 400, "'name'"),
    "no config": ({"name": "ga-bad"}, 400, "'config'"),
    "both lists": (
        {"name": "ga-bad", "config": {"served_entities": [entity("1")], "served_models": [entity("1")]}},
        400,
        "exactly one",
    ),
    "empty list": ({"name": "ga-bad", "config": {"served_entities": []}}, 400, "non-empty"),
    "bad size": ({"name": "ga-bad", "config": {"served_entities": [entity("1", workload_size="Huge")]}}, 400, "Huge"),
    "bad version": ({"name": "ga-bad", "config": {"served_entities": [entity("latest")]}}, 400, "version number"),
    "env vars": (
        {"name": "ga-bad", "config": {"served_entities": [entity("1", environment_vars={"A": "{{secrets/no/such}}"})]}},
        400,
        "secret 'such' of scope 'no'",
    ),
    "placement without Ray": (
        {"name": "ga-bad", "config": {"served_entities": [entity("1", placement={"node_labels": {"zone": "b"}})]}},
        400,
        "'config.served_entities[0].placement' needs the Ray engine (rtserve server --engine ray)",
    ),
    "bad placement": (
        {"name": "ga-bad", "config": {"served_entities": [entity("1", placement={"resources": {"gpu-ish": 0}})]}},
        400,
        "'config.served_entities[0].placement.resources.gpu-ish' must be a number above 0",
    ),
    "split without routes": (
        {"name": "ga-bad", "config": {"served_entities": [entity("1", "a"), entity("2", "b")]}},
        400,
        "traffic_config",
    ),
    "routes not 100": (
        {
            "name": "ga-bad",
            "config": {
                "served_entities": [entity("1", "a"), entity("2", "b")],
                "traffic_config": {
                    "routes": [
                        {"served_model_name": "a", "traffic_percentage": 50},
                        {"served_model_name": "b", "traffic_percentage": 40},
                    ]
                },
            },
        },
        400,
        "sum to 100",
    ),
    "route to nobody": (
        {
            "name": "ga-bad",
            "config": {
                "served_entities": [entity("1", "a")],
                "traffic_config": {"routes": [{"served_model_name": "zzz", "traffic_percentage": 100}]},
            },
        },
        400,
        "served_model_name",
    ),
    "duplicate names": (
        {"name": "ga-bad", "config": {"served_entities": [entity("1", "a"), entity("2", "a")]}},
        400,
        "unique",
    ),
    "missing version": ({"name": "ga-bad", "config": {"served_entities": [entity("99")]}}, 404, "does not exist"),
    "missing model": (
        {"name": "ga-bad", "config": {"served_entities": [{"entity_name": "nope-model", "entity_version": "1"}]}},
        404,
        "does not exist",
    ),
}


@pytest.mark.parametrize("case", BAD_CREATES, ids=list(BAD_CREATES))
def test_a_bad_create_is_refused_with_the_envelope_and_creates_nothing(admin: BackendClient, ga_model: str, case: str):
    body, status, words = BAD_CREATES[case]

    response = admin.http.post(API, json=body)

    assert response.status_code == status, response.text
    error = response.json()
    assert error["error_code"] in ("INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST")
    assert words in error["message"]
    assert admin.http.get(f"{API}/ga-bad").status_code == 404


def test_a_name_taken_is_refused_with_409_and_the_existing_endpoint_is_untouched(admin: BackendClient, ga_model: str):
    first = create(admin, "ga-taken", entity("1"))

    again = admin.http.post(API, json={"name": "ga-taken", "config": {"served_entities": [entity("2")]}})

    assert again.status_code == 409 and again.json()["error_code"] == "RESOURCE_ALREADY_EXISTS"
    kept = admin.call("GET", f"{API}/ga-taken")
    assert kept["id"] == first["id"]
    assert (kept.get("config") or kept["pending_config"])["served_entities"][0]["entity_version"] == "1"


def test_tags_are_added_replaced_and_deleted(admin: BackendClient, ga_model: str):
    admin.call(
        "POST",
        API,
        json={"name": "ga-tags", "config": {"served_entities": [entity("1")]}, "tags": [{"key": "team", "value": "a"}]},
    )

    tags = admin.call(
        "PATCH",
        f"{API}/ga-tags/tags",
        json={"add_tags": [{"key": "team", "value": "b"}, {"key": "tier", "value": "gold"}], "delete_tags": ["x"]},
    )
    assert tags == {"tags": [{"key": "team", "value": "b"}, {"key": "tier", "value": "gold"}]}
    tags = admin.call("PATCH", f"{API}/ga-tags/tags", json={"delete_tags": ["team"]})
    assert tags == {"tags": [{"key": "tier", "value": "gold"}]}
    assert admin.call("GET", f"{API}/ga-tags")["tags"] == tags["tags"]


def test_logs_build_logs_and_metrics_of_a_served_model(admin: BackendClient, ga_model: str):
    create(admin, "ga-obs", entity("1", "obs"))
    wait_settled(admin, "ga-obs")
    assert invoke(admin, "ga-obs").status_code == 200

    logs = admin.call("GET", f"{API}/ga-obs/served-models/obs/logs")["logs"]
    build = admin.call("GET", f"{API}/ga-obs/served-models/obs/build-logs")["logs"]
    metrics = admin.http.get(f"{API}/ga-obs/metrics")

    assert "serving on" in logs  # the replica's own log line
    assert "Replica" in build
    assert metrics.status_code == 200
    assert f'request_count_total{{model="{MODEL}",version="1"}}' in metrics.text
    assert 'version="2"' not in metrics.text  # only this endpoint's served models
    assert admin.http.get(f"{API}/ga-obs/served-models/nobody/logs").status_code == 404


def test_deleting_an_endpoint_stops_its_replicas_and_its_urls(admin: BackendClient, ga_model: str):
    other_model = "iris-ga-delete"
    register_demo_model(admin.host, name=other_model, versions=1)
    admin.call(
        "POST",
        API,
        json={"name": "ga-gone", "config": {"served_entities": [{"entity_name": other_model, "entity_version": "1"}]}},
    )
    wait_settled(admin, "ga-gone")

    assert admin.call("DELETE", f"{API}/ga-gone") == {}

    assert admin.http.get(f"{API}/ga-gone").status_code == 404
    response = invoke(admin, "ga-gone")
    assert response.status_code == 404 and response.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert admin.http.delete(f"{API}/ga-gone").status_code == 404
    deadline = time.monotonic() + 30
    while f'replicas{{model="{other_model}",state="READY"' in admin.http.get("/metrics").text:
        assert time.monotonic() < deadline, "the deleted endpoint's replica is still running"
        time.sleep(0.1)


def test_permissions_viewers_read_queriers_score_managers_change(
    backend: BackendProcess, admin: BackendClient, ga_model: str
):
    create(admin, "ga-perm", entity("1"))
    wait_settled(admin, "ga-perm")
    viewer, _ = create_token(backend, "CAN_VIEW")
    querier, _ = create_token(backend, "CAN_QUERY")

    def call(token: str, method: str, path: str, **kwargs: Any) -> int:
        return httpx.request(
            method, f"{backend.url}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=30, **kwargs
        ).status_code

    assert call(viewer, "GET", f"{API}/ga-perm") == 200
    assert call(viewer, "POST", "/serving-endpoints/ga-perm/invocations", json=IRIS) == 403
    assert call(querier, "POST", "/serving-endpoints/ga-perm/invocations", json=IRIS) == 200
    assert call(querier, "DELETE", f"{API}/ga-perm") == 403
    assert call(querier, "PUT", f"{API}/ga-perm/config", json={"served_entities": [entity("2")]}) == 403
    assert httpx.get(f"{backend.url}{API}").status_code == 401


def test_mlflows_databricks_deployment_client_works_unchanged(
    backend: BackendProcess, admin: BackendClient, ga_model: str, monkeypatch: pytest.MonkeyPatch
):
    from mlflow.deployments import get_deploy_client

    monkeypatch.setenv("DATABRICKS_HOST", backend.url)
    monkeypatch.setenv("DATABRICKS_TOKEN", backend.admin_token)
    client = get_deploy_client("databricks")

    created = client.create_endpoint(
        config={
            "name": "ga-mlflow",
            "config": {"served_entities": [entity("2")]},
            "tags": [{"key": "via", "value": "mlflow"}],
        }
    )
    assert created["name"] == "ga-mlflow"
    wait_settled(admin, "ga-mlflow")

    prediction = client.predict(endpoint="ga-mlflow", inputs=IRIS)
    assert prediction["predictions"] == [0, 2]
    assert client.get_endpoint("ga-mlflow")["config"]["served_entities"][0]["entity_version"] == "2"
    assert "ga-mlflow" in [endpoint["name"] for endpoint in client.list_endpoints()]
    client.delete_endpoint("ga-mlflow")
    assert "ga-mlflow" not in [endpoint["name"] for endpoint in client.list_endpoints()]


def test_versions_only_an_endpoint_serves_stay_out_of_the_preview_apis_status(admin: BackendClient, ga_model: str):
    model = "iris-ga-apart"
    register_demo_model(admin.host, name=model, versions=1)
    admin.create_serving_endpoint("ga-apart", {"served_entities": [{"entity_name": model, "entity_version": "1"}]})
    admin.wait_serving_settled("ga-apart")

    admin.enable(model)  # serving by stage, with no version in a stage yet

    status = admin.wait_ready(model, timeout=30)  # READY with nothing to serve, not waiting for version 1
    assert "no version is in Staging or Production" in status["state_message"]
    assert admin.versions(model) == []
    assert admin.score_serving("ga-apart", IRIS).status_code == 200


def test_databricks_sdk_creates_waits_for_queries_and_deletes_an_endpoint(
    backend: BackendProcess, admin: BackendClient, ga_model: str
):
    from databricks.sdk import WorkspaceClient
    from databricks.sdk.service.serving import (
        DataframeSplitInput,
        EndpointCoreConfigInput,
        EndpointStateConfigUpdate,
        EndpointStateReady,
        ServedEntityInput,
    )

    client = WorkspaceClient(host=backend.url, token=backend.admin_token, auth_type="pat")
    served = ServedEntityInput(
        entity_name=MODEL, entity_version="1", workload_size="Small", scale_to_zero_enabled=False
    )

    ready = client.serving_endpoints.create_and_wait(
        "ga-sdk", config=EndpointCoreConfigInput(name="ga-sdk", served_entities=[served])
    )

    assert ready.state.ready == EndpointStateReady.READY
    assert ready.state.config_update == EndpointStateConfigUpdate.NOT_UPDATING
    split = IRIS["dataframe_split"]
    answer = client.serving_endpoints.query(
        "ga-sdk",
        dataframe_split=DataframeSplitInput(columns=split["columns"], data=split["data"]),
        client_request_id="req-42",  # Databricks' inference-table fields are accepted and ignored
        usage_context={"team": "risk"},
    )
    assert answer.predictions == [0, 2] and answer.served_model_name == f"{MODEL}-1"
    assert "ga-sdk" in [endpoint.name for endpoint in client.serving_endpoints.list()]
    newer = ServedEntityInput(entity_name=MODEL, entity_version="2", workload_size="Small", scale_to_zero_enabled=False)
    updated = client.serving_endpoints.update_config_and_wait("ga-sdk", served_entities=[newer])
    assert updated.config.config_version == 2 and updated.pending_config is None
    again = client.serving_endpoints.query("ga-sdk", dataframe_split=DataframeSplitInput(**split))
    assert again.served_model_name == f"{MODEL}-2"
    client.serving_endpoints.delete("ga-sdk")
    assert admin.http.get(f"{API}/ga-sdk").status_code == 404
