"""Seed 000, step by step, against a live backend with real worker processes and real MLflow models."""

from __future__ import annotations

import threading
import time

import httpx
import mlflow
import pytest

from rtserve.server.client import BackendClient, BackendError
from rtserve.server.demo import request_bodies
from rtserve.server.demo_model import iris_frame, register_demo_model
from tests.conftest import ADMIN_TOKEN

pytestmark = pytest.mark.api


def expected_predictions(model: str, version: str) -> list:
    features, _ = iris_frame()
    rows = features.iloc[[0, 100]]
    return mlflow.pyfunc.load_model(f"models:/{model}/{version}").predict(rows).tolist()


@pytest.fixture(scope="module")
def served(admin: BackendClient, iris_model: str) -> str:
    """Seed 000's setup: serving enabled, version 1 in Production and version 2 in Staging, both ready."""
    admin.enable(iris_model)
    admin.transition(iris_model, "1", "Production", archive=True)
    admin.transition(iris_model, "2", "Staging", archive=True)
    admin.wait_ready(iris_model, ["1", "2"], timeout=120)
    return iris_model


def test_enabling_an_unknown_model_is_a_404(admin: BackendClient):
    with pytest.raises(BackendError) as raised:
        admin.enable("no-such-model")
    assert (raised.value.status, raised.value.error_code) == (404, "RESOURCE_DOES_NOT_EXIST")


def test_enable_shows_pending_then_ready(admin: BackendClient, mlflow_client_env: str):
    register_demo_model(mlflow_client_env, name="iris-pending", versions=1)
    admin.enable("iris-pending")
    admin.transition("iris-pending", "1", "Production")
    status = admin.status("iris-pending")
    assert status["state"] == "ENDPOINT_STATE_PENDING"
    assert admin.wait_ready("iris-pending", ["1"])["state"] == "ENDPOINT_STATE_READY"
    admin.disable("iris-pending")


def test_every_input_format_predicts_exactly_what_pyfunc_predicts(admin: BackendClient, served: str):
    for version, stage in (("1", "Production"), ("2", "Staging")):
        expected = expected_predictions(served, version)
        for fmt, (content_type, body) in request_bodies().items():
            for target in (stage, version):
                response = admin.score(served, target, body, content_type)
                assert response.status_code == 200, (fmt, target, response.text)
                assert response.json() == {"predictions": expected}, (fmt, target)


def test_version_urls_work_under_both_prefixes_and_with_basic_auth(backend, served: str):
    body = request_bodies()["dataframe_split"][1]
    for prefix in ("model", "model-endpoint"):
        response = httpx.post(
            f"{backend.url}/{prefix}/{served}/Production/invocations", json=body, auth=("token", ADMIN_TOKEN)
        )
        assert response.status_code == 200, response.text
        assert response.headers["served-model-name"] == f"{served}-1"


def test_status_objects_have_the_seed_shapes(admin: BackendClient, served: str):
    status = admin.status(served)
    assert status["registered_model_name"] == served
    assert status["state"] == "ENDPOINT_STATE_READY"
    assert {c["stage"] for c in status["compute_config"]} == {"Staging", "Production"}
    for config in status["compute_config"]:
        assert set(config) == {"stage", "creation_timestamp", "user_id", "workload_spec"}
        assert config["workload_spec"] == {"workload_size_id": "Small", "scale_to_zero_enabled": False}
    version = admin.call(
        "GET",
        "/api/2.0/preview/mlflow/endpoints-v2/get-version-status",
        json={"registered_model_name": served, "endpoint_version_name": "1"},  # GET params as a JSON body
    )["endpoint_status"]
    assert version["endpoint_version_name"] == "1"
    assert version["service_status"]["state"] == "SERVICE_STATE_READY"
    assert version["service_status"]["config"]["stage"] == "Production"
    assert version["config_update_status"]["state"] == "SERVICE_STATE_READY"
    assert admin.aliases(served) == {"Staging": "2", "Production": "1"}


def test_supported_workload_sizes_match_the_reference(admin: BackendClient):
    sizes = admin.call("GET", "/api/2.0/preview/mlflow/endpoints-v2/get-supported-workload-sizes")["workload_sizes"]
    assert sizes == [
        {"key": "Small", "min_concurrency": 4, "max_concurrency": 4},
        {"key": "Medium", "min_concurrency": 8, "max_concurrency": 16},
        {"key": "Large", "min_concurrency": 16, "max_concurrency": 64},
    ]


def test_compute_update_is_pending_then_ready_and_adds_replicas(admin: BackendClient, served: str):
    admin.update_compute(served, "Staging", "Medium")
    pending = {v["endpoint_version_name"]: v for v in admin.versions(served)}["2"]
    assert pending["config_update_status"]["state"] == "SERVICE_STATE_PENDING"
    assert pending["config_update_status"]["config"]["workload_spec"]["workload_size_id"] == "Medium"
    admin.wait_ready(served, ["2"])
    replicas = admin.call(
        "GET",
        "/api/2.0/preview/mlflow/endpoints-v2/get-version-replicas",
        params={"registered_model_name": served, "endpoint_version_name": "2"},
    )["replicas"]
    assert sum(r["last_known_status"] == "READY" for r in replicas) == 2
    admin.update_compute(served, "Staging", "Small")
    admin.wait_ready(served, ["2"])


def test_promotion_switches_the_stage_url_without_a_failed_request(admin: BackendClient, served: str):
    body = request_bodies()["dataframe_split"][1]
    failures: list[str] = []
    served_by: set[str] = set()
    stop = threading.Event()

    def scorer() -> None:
        client = BackendClient(admin.host, ADMIN_TOKEN)
        while not stop.is_set():
            response = client.score(served, "Production", body)
            if response.status_code != 200:
                failures.append(f"{response.status_code} {response.text}")
            else:
                served_by.add(response.headers["served-model-name"])
        client.close()

    thread = threading.Thread(target=scorer)
    thread.start()
    try:
        time.sleep(0.5)
        admin.transition(served, "2", "Production", archive=True, comment="promote 2")
        deadline = time.monotonic() + 60
        while admin.aliases(served).get("Production") != "2":
            assert time.monotonic() < deadline, "Production never switched to version 2"
            time.sleep(0.1)
        time.sleep(0.5)
    finally:
        stop.set()
        thread.join()
    assert failures == []
    assert served_by == {f"{served}-1", f"{served}-2"}
    # Version 1 left Production (archived) and stops once the route moved; version 2 serves both URLs.
    deadline = time.monotonic() + 30
    while "1" in {v["endpoint_version_name"] for v in admin.versions(served)}:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert admin.score(served, "1", body).status_code == 404
    # Restore seed 000's layout for the other tests.
    admin.transition(served, "1", "Production", archive=True)
    admin.transition(served, "2", "Staging", archive=True)
    admin.wait_ready(served, ["1", "2"])


def test_several_versions_in_one_stage_are_served_and_the_newest_takes_the_url(admin: BackendClient, served: str):
    admin.transition(served, "1", "Staging", archive=False)  # now versions 1 and 2 are both in Staging
    admin.wait_ready(served, ["1", "2"])
    body = request_bodies()["dataframe_split"][1]
    assert admin.score(served, "Staging", body).headers["served-model-name"] == f"{served}-2"
    assert admin.score(served, "1", body).status_code == 200
    assert "Production" not in admin.aliases(served)
    admin.transition(served, "1", "Production", archive=True)
    admin.wait_ready(served, ["1", "2"])


def test_mlflows_own_transition_route_is_followed_too(admin: BackendClient, served: str):
    client = mlflow.MlflowClient()
    client.transition_model_version_stage(served, "2", "Archived")
    deadline = time.monotonic() + 30
    while "Staging" in admin.aliases(served):
        assert time.monotonic() < deadline, "archiving through MLflow's route did not stop the Staging URL"
        time.sleep(0.2)
    body = request_bodies()["dataframe_split"][1]
    response = admin.score(served, "Staging", body)
    assert response.status_code == 404 and response.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    client.transition_model_version_stage(served, "2", "Staging")
    admin.wait_ready(served, ["2"])


def test_databricks_transition_returns_model_version_databricks(admin: BackendClient, served: str):
    body = admin.transition(served, "2", "Staging", archive=False, comment="no-op move")
    version = body["model_version_databricks"]
    assert (version["name"], version["version"], version["current_stage"]) == (served, "2", "Staging")
    assert version["status"] == "READY"


def test_logs_and_events_are_readable(admin: BackendClient, served: str):
    params = {"registered_model_name": served, "endpoint_version_name": "1"}
    logs = admin.call("POST", "/api/2.0/preview/mlflow/endpoints-v2/get-version-logs", json=params)["logs"]
    assert f"[{served[:24]}-1-" in logs or f"[{served}-1-" in logs
    events = admin.call("GET", "/api/2.0/preview/mlflow/endpoints-v2/get-event-history", params=params)["events"]
    messages = [e["message"] for e in events]
    assert "Version 1 is ready" in messages
    assert events == sorted(events, key=lambda e: e["timestamp"], reverse=True)
    assert {"timestamp", "type", "endpoint_version_name", "stage", "message"} <= set(events[0])


def test_disable_stops_serving(admin: BackendClient, mlflow_client_env: str):
    register_demo_model(mlflow_client_env, name="iris-disable", versions=1)
    admin.enable("iris-disable")
    admin.transition("iris-disable", "1", "Production")
    admin.wait_ready("iris-disable", ["1"])
    admin.disable("iris-disable")
    response = admin.score("iris-disable", "Production", request_bodies()["dataframe_split"][1])
    assert response.status_code == 404
    with pytest.raises(BackendError) as raised:
        admin.status("iris-disable")
    assert raised.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_the_readme_sequence_scores_at_once_enable_transition_score(admin: BackendClient, mlflow_client_env: str):
    """No 404 window: a score sent right after enable and transition waits for the version to start."""
    register_demo_model(mlflow_client_env, name="iris-at-once", versions=1)
    try:
        admin.enable("iris-at-once")
        admin.transition("iris-at-once", "1", "Production")
        _, body = request_bodies()["dataframe_split"]
        response = admin.score("iris-at-once", "Production", body, "application/json")
        assert response.status_code == 200, response.text
    finally:
        admin.disable("iris-at-once")


def test_scoring_a_model_that_does_not_exist_says_so(admin: BackendClient):
    _, body = request_bodies()["dataframe_split"]
    response = admin.score("iris-classifer", "Production", body, "application/json")
    assert response.status_code == 404
    assert response.json()["message"] == "Registered model 'iris-classifer' does not exist; check the name in the URL."
