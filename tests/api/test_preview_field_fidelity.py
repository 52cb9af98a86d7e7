"""The preview API (endpoints-v2) honours every field of its bodies or refuses it with a 400 that names it:
never dropped. A compute config's placement is refused on this backend's local engine, not ignored, while
the requests of seed 000 and Databricks' clients (which omit rtserve's extensions) still work."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from rtserve.server.client import BackendClient
from rtserve.server.demo_model import register_demo_model

pytestmark = pytest.mark.api
MODEL = "iris-preview-fidelity"
PREVIEW = "/api/2.0/preview/mlflow/endpoints-v2"
LEGACY = "/api/2.0/preview/model-serving-api/endpoints-v2"
SPEC = "desired_workload_config_spec"


@pytest.fixture(scope="module")
def enabled(admin: BackendClient, mlflow_client_env: str) -> str:
    register_demo_model(mlflow_client_env, name=MODEL, versions=1)
    admin.enable(MODEL)
    return MODEL


def compute_body(**spec: Any) -> dict:
    return {"registered_model_name": MODEL, "stage": "Staging", SPEC: {"workload_size_id": "Small", **spec}}


def refused(response: httpx.Response) -> str:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error_code"] == "INVALID_PARAMETER_VALUE"
    return body["message"]


def staging_spec(admin: BackendClient) -> dict:
    return {c["stage"]: c["workload_spec"] for c in admin.status(MODEL)["compute_config"]}["Staging"]


def test_placement_on_the_local_engine_is_refused_naming_the_field_and_nothing_changes(
    admin: BackendClient, enabled: str
):
    before = staging_spec(admin)
    body = compute_body(workload_size_id="Medium", placement={"node_labels": {"zone": "b"}})

    message = refused(admin.http.put(f"{PREVIEW}/update-compute-config", json=body))

    assert message.startswith(f"'{SPEC}.placement' needs the Ray engine (rtserve server --engine ray)")
    assert "--engine local" in message
    assert staging_spec(admin) == before


def test_a_bad_placement_is_refused_naming_the_field_inside_it(admin: BackendClient, enabled: str):
    body = compute_body(placement={"resources": {"licensed": 0}})
    message = refused(admin.http.put(f"{PREVIEW}/update-compute-config", json=body))
    assert f"'{SPEC}.placement.resources.licensed' must be a number above 0" in message


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("PUT", f"{PREVIEW}/update-compute-config", compute_body(min_replicas=2), f"{SPEC}.min_replicas"),
        ("PUT", f"{LEGACY}/update-compute-config", compute_body(gpu=True), f"{SPEC}.gpu"),
        ("PUT", f"{PREVIEW}/update-compute-config", {**compute_body(), "comment": "resize"}, "comment"),
        ("POST", f"{PREVIEW}/enable", {"registered_model_name": MODEL, "stage": "Staging"}, "stage"),
        ("POST", f"{PREVIEW}/disable", {"registered_model_name": MODEL, "force": True}, "force"),
    ],
    ids=["spec field", "spec field (legacy path)", "top-level field", "enable", "disable"],
)
def test_an_unknown_field_is_a_400_naming_it_and_changes_nothing(
    admin: BackendClient, enabled: str, method: str, path: str, body: dict, field: str
):
    before = admin.status(MODEL)["compute_config"]

    message = refused(admin.http.request(method, path, json=body))

    assert message.startswith(f"'{field}' is not a field rtserve knows here; it accepts ")
    assert admin.status(MODEL)["compute_config"] == before  # still enabled, compute unchanged


def test_seed_000_requests_and_databricks_nulls_still_work(admin: BackendClient, enabled: str):
    # Seed 000's bodies, as written there, on both paths it shows.
    assert admin.http.post(f"{PREVIEW}/enable", json={"registered_model_name": MODEL}).json() == {}
    body = {"registered_model_name": MODEL, "stage": "Staging", SPEC: {"workload_size_id": "Medium"}}
    assert admin.http.put(f"{LEGACY}/update-compute-config", json=body).json() == {}
    assert staging_spec(admin) == {"workload_size_id": "Medium", "scale_to_zero_enabled": False}
    # A null placement asks for no node (it clears one): nothing to refuse on the local engine.
    spec = {"workload_size_id": "Small", "scale_to_zero_enabled": True, "placement": None}
    body = {"registered_model_name": MODEL, "stage": "staging", SPEC: spec}
    assert admin.http.put(f"{PREVIEW}/update-compute-config", json=body).json() == {}
    assert staging_spec(admin) == {"workload_size_id": "Small", "scale_to_zero_enabled": True}
