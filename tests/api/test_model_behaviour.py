"""Models that fail to load, raise while predicting, or take params: what a client observes."""

from __future__ import annotations

import pytest

from rtserve.server.client import BackendClient
from tests.registry_helpers import params_signature, register_code_model

pytestmark = pytest.mark.api


def wait_for_state(admin: BackendClient, model: str, version: str, state: str, timeout: float = 60) -> dict:
    import time

    deadline = time.monotonic() + timeout
    while True:
        statuses = {v["endpoint_version_name"]: v for v in admin.versions(model)}
        if version in statuses and statuses[version]["service_status"]["state"] == state:
            return statuses[version]
        assert time.monotonic() < deadline, f"version {version} never reached {state}: {statuses}"
        time.sleep(0.2)


def test_a_model_that_cannot_load_is_failed_with_the_loaders_error(admin: BackendClient, mlflow_client_env: str):
    version = register_code_model("broken-model", "failing_load.py")
    admin.enable("broken-model")
    admin.transition("broken-model", version, "Production")
    status = wait_for_state(admin, "broken-model", version, "SERVICE_STATE_FAILED")
    assert "weights.bin is missing" in status["service_status"]["message"]
    endpoint = admin.status("broken-model")
    assert endpoint["state"] == "ENDPOINT_STATE_FAILED"
    assert "weights.bin is missing" in endpoint["state_message"]
    response = admin.score("broken-model", "Production", {"dataframe_records": [{"x": 1.0}]})
    assert response.status_code == 503
    assert response.json()["error_code"] == "TEMPORARILY_UNAVAILABLE"
    assert "weights.bin is missing" in response.json()["message"]
    events = admin.call(
        "GET",
        "/api/2.0/preview/mlflow/endpoints-v2/get-event-history",
        params={"registered_model_name": "broken-model"},
    )["events"]
    assert any("failed to load" in e["message"] and e["type"] == "CONTAINER_EVENT" for e in events)
    # The replica's log keeps the traceback for debugging.
    logs = admin.call(
        "POST",
        "/api/2.0/preview/mlflow/endpoints-v2/get-version-logs",
        json={"registered_model_name": "broken-model", "endpoint_version_name": version},
    )["logs"]
    assert "RuntimeError" in logs
    admin.disable("broken-model")


def test_a_model_that_raises_answers_400_with_its_message(admin: BackendClient, mlflow_client_env: str):
    version = register_code_model("raising-model", "raising_predict.py")
    admin.enable("raising-model")
    admin.transition("raising-model", version, "Production")
    admin.wait_ready("raising-model", [version])
    good = admin.score("raising-model", "Production", {"dataframe_records": [{"x": 2.0}]})
    assert good.json() == {"predictions": [4.0]}
    bad = admin.score("raising-model", "Production", {"dataframe_records": [{"x": -1.0}]})
    assert bad.status_code == 400
    assert bad.json()["error_code"] == "BAD_REQUEST"
    assert "x must not be negative" in bad.json()["message"]
    admin.disable("raising-model")


def test_params_reach_the_model(admin: BackendClient, mlflow_client_env: str):
    version = register_code_model("params-model", "params_model.py", signature=params_signature())
    admin.enable("params-model")
    admin.transition("params-model", version, "Staging")
    admin.wait_ready("params-model", [version])
    body = {"dataframe_split": {"columns": ["x"], "data": [[1.5], [2.0]]}, "params": {"factor": 3.0}}
    assert admin.score("params-model", "Staging", body).json() == {"predictions": [4.5, 6.0]}
    no_params = {"dataframe_split": {"columns": ["x"], "data": [[1.5]]}}
    assert admin.score("params-model", "Staging", no_params).json() == {"predictions": [1.5]}
    admin.disable("params-model")
