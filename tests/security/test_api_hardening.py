"""Findings of the security review on the API surface, each kept fixed (live backend, real tokens).

Path traversal through replica logs, limits that overflowed, type errors and huge numbers that
answered 500 or 503, MLflow routes whose read/write was guessed from the path's ending, scoring
URLs decoded twice, errors without a request id, and MLflow's HTML error pages.
"""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path

import httpx
import pytest

from rtserve.server.client import BackendClient
from rtserve.server.demo import request_bodies
from rtserve.server.demo_model import register_demo_model
from rtserve.server.process import BackendProcess
from tests.tokens import create_token

pytestmark = pytest.mark.api
IRIS = request_bodies()["dataframe_split"][1]
PREVIEW = "/api/2.0/preview/mlflow/endpoints-v2"
MODEL = "iris-hardening"


@pytest.fixture(scope="module")
def served(admin: BackendClient, mlflow_client_env: str) -> str:
    """MODEL version 1 in Production, READY."""
    register_demo_model(mlflow_client_env, name=MODEL, versions=1)
    admin.enable(MODEL)
    admin.transition(MODEL, "1", "Production")
    admin.wait_ready(MODEL, ["1"], timeout=120)
    return MODEL


@pytest.fixture(scope="module")
def viewer(backend: BackendProcess) -> httpx.Client:
    token, _ = create_token(backend, "CAN_VIEW")
    with httpx.Client(base_url=backend.url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        yield client


def assert_envelope(response: httpx.Response, status: int, error_code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.text
    body = response.json()
    assert set(body) >= {"error_code", "message", "details"}, body
    if error_code is not None:
        assert body["error_code"] == error_code, body
    assert body["details"][0]["request_id"] == response.headers["x-request-id"]
    return body


# -- 1. path traversal through get-version-logs ----------------------------------------------------
def test_a_version_that_is_a_path_reads_no_file(backend: BackendProcess, viewer: httpx.Client, served: str):
    outside = backend.data_dir.parent / f"planted-{uuid.uuid4().hex[:6]}"
    outside.mkdir()
    (outside / "secret.log").write_text("the content of a file outside the logs directory\n")
    logs = f"{PREVIEW}/get-version-logs"
    attempts = [
        ("GET", {"params": {"registered_model_name": served, "endpoint_version_name": str(outside)}}),
        (
            "GET",
            {"params": {"registered_model_name": served, "endpoint_version_name": "/var/log", "replica_id": "dpkg"}},
        ),
        (
            "POST",
            {"json": {"registered_model_name": served, "endpoint_version_name": str(outside), "replica_id": "secret"}},
        ),
        ("POST", {"json": {"registered_model_name": served, "endpoint_version_name": "../../.."}}),
        ("POST", {"json": {"registered_model_name": served, "endpoint_version_name": "1/../../../.."}}),
    ]
    for method, kwargs in attempts:
        response = viewer.request(method, logs, **kwargs)
        body = assert_envelope(response, 400, "INVALID_PARAMETER_VALUE")
        assert "version number" in body["message"]
        assert "outside the logs" not in response.text
    # A replica id is only ever one whose log is in the version's own directory.
    for replica_id in ("../../../planted/secret", str(outside / "secret"), "..", "."):
        params = {"registered_model_name": served, "endpoint_version_name": "1", "replica_id": replica_id}
        assert_envelope(viewer.post(logs, json=params), 404, "RESOURCE_DOES_NOT_EXIST")
    # The real logs still read.
    assert "Replica" in viewer.post(logs, json={"registered_model_name": served, "endpoint_version_name": "1"}).text


def test_artifact_paths_of_the_embedded_mlflow_stay_inside_its_store(viewer: httpx.Client):
    for path in (
        "/api/2.0/mlflow-artifacts/artifacts/..%2F..%2F..%2Fetc%2Fpasswd",
        "/get-artifact?path=../../../etc/passwd&run_id=0",
        "/model-versions/get-artifact?path=../../../etc/passwd&name=x&version=1",
    ):
        response = viewer.get(path)
        assert response.status_code >= 400 and "root:" not in response.text, response.text
        assert response.headers["content-type"].startswith("application/json")


# -- 5. rate limits validated when set -------------------------------------------------------------
def test_a_rate_limit_beyond_reason_is_refused_and_scoring_keeps_working(admin: BackendClient, served: str):
    name = f"huge-limit-{uuid.uuid4().hex[:6]}"
    admin.create_serving_endpoint(name, {"served_entities": [{"entity_name": served, "entity_version": "1"}]})
    admin.wait_serving_settled(name)
    for calls in (10**400, 10**12, -1, "100", 1.5):
        body = {"rate_limits": [{"calls": calls, "key": "endpoint", "renewal_period": "minute"}]}
        response = admin.http.put(f"/api/2.0/serving-endpoints/{name}/ai-gateway", json=body)
        assert_envelope(response, 400, "INVALID_PARAMETER_VALUE")
        assert "calls" in response.json()["message"]
    assert admin.score_serving(name, IRIS).status_code == 200


# -- 6. type errors answer 400, not 500 ------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        (
            "PUT",
            f"{PREVIEW}/update-compute-config",
            {
                "registered_model_name": MODEL,
                "stage": "Staging",
                "desired_workload_config_spec": {"workload_size_id": []},
            },
            "workload_size_id",
        ),
        (
            "POST",
            "/api/2.0/serving-endpoints",
            {
                "name": "typed",
                "config": {"served_entities": [{"entity_name": MODEL, "entity_version": "1", "workload_size": {}}]},
            },
            "workload_size",
        ),
        (
            "PUT",
            "/api/2.0/serving-endpoints/typed/rate-limits",
            {"rate_limits": [{"calls": 1, "key": "endpoint", "renewal_period": ["minute"]}]},
            "renewal_period",
        ),
        (
            "POST",
            f"{PREVIEW}/enable",
            {"registered_model_name": [MODEL]},
            "registered_model_name",
        ),
    ],
)
def test_a_value_of_the_wrong_type_is_a_400_naming_the_field(
    admin: BackendClient, served: str, method: str, path: str, body: dict, field: str
):
    if path.endswith("/rate-limits"):
        admin.http.post(
            "/api/2.0/serving-endpoints",
            json={"name": "typed", "config": {"served_entities": [{"entity_name": served, "entity_version": "1"}]}},
        )
    response = admin.http.request(method, path, json=body)
    assert field in assert_envelope(response, 400)["message"]


@pytest.mark.parametrize(
    "raw",
    [
        b'{"registered_model_name": ' + b"9" * 5000 + b"}",
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a": ' + b'{"a": ' * 50_000 + b"1" + b"}" * 50_001,
    ],
    ids=["5000-digit integer", "nested 100000 deep", "objects nested 50000 deep"],
)
def test_bodies_that_python_cannot_parse_are_a_400(admin: BackendClient, served: str, raw: bytes):
    for path in (
        f"{PREVIEW}/enable",
        "/api/2.0/serving-endpoints",
        "/api/2.0/mlflow/databricks/model-versions/transition-stage",
    ):
        response = admin.http.post(path, content=raw, headers={"content-type": "application/json"})
        assert_envelope(response, 400, "MALFORMED_REQUEST")


# -- 7. versions beyond 64 bits ---------------------------------------------------------------------
def test_a_version_beyond_64_bits_is_a_400_at_once(admin: BackendClient, served: str):
    huge = "99999999999999999999"
    started = time.monotonic()
    response = admin.http.post(
        "/api/2.0/mlflow/databricks/model-versions/transition-stage",
        json={"name": served, "version": huge, "stage": "Staging"},
    )
    assert_envelope(response, 400, "INVALID_PARAMETER_VALUE")
    config = {"served_entities": [{"entity_name": served, "entity_version": huge}]}
    response = admin.http.post("/api/2.0/serving-endpoints", json={"name": "huge-version", "config": config})
    assert "entity_version" in assert_envelope(response, 400, "INVALID_PARAMETER_VALUE")["message"]
    assert time.monotonic() - started < 2.0


# -- 9. MLflow's routes: reads and writes from MLflow's own route table ------------------------------
def test_a_view_token_cannot_reach_mlflow_writes_through_a_path_ending_in_get(viewer: httpx.Client, served: str):
    for path in (
        "/api/2.0/mlflow-artifacts/mpu/create/0/abc/artifacts/model/get",
        "/api/2.0/mlflow-artifacts/mpu/complete/x/search",
        "/api/2.0/mlflow/registered-models/create/get",
    ):
        assert_envelope(viewer.post(path, json={"path": "x"}), 403, "PERMISSION_DENIED")
    assert_envelope(viewer.post("/api/2.0/mlflow/registered-models/create", json={"name": "by-a-viewer"}), 403)
    # Reads MLflow sends as POST still work for a viewer.
    assert viewer.post("/api/2.0/mlflow/runs/search", json={"experiment_ids": ["0"]}).status_code == 200
    assert viewer.get("/api/2.0/mlflow/registered-models/get", params={"name": served}).status_code == 200


# -- 12. scoring URLs are decoded once ---------------------------------------------------------------
def test_scoring_urls_are_percent_decoded_once(admin: BackendClient, served: str):
    doubly = served.replace("h", "%2568")  # decodes once to "%68", twice to "h"
    response = admin.http.post(f"/model-endpoint/{doubly}/Production/invocations", json=IRIS)
    assert_envelope(response, 404)
    control = admin.http.get(f"{PREVIEW}/get-status", params={"registered_model_name": served.replace("h", "%68")})
    assert control.status_code == 404
    singly = served.replace("h", "%68")
    assert admin.http.post(f"/model-endpoint/{singly}/Production/invocations", json=IRIS).status_code == 200


# -- 18 and the request id: every error is the JSON envelope, with an id that is logged ---------------
def test_scoring_errors_carry_the_request_id(admin: BackendClient, served: str):
    refused = admin.score(served, "Production", {"dataframe_split": {"columns": ["nope"], "data": [["x"]]}})
    assert_envelope(refused, 400)
    missing = admin.score(served, "Nonexistent", IRIS)
    assert_envelope(missing, 404)
    assert refused.headers["x-request-id"] != missing.headers["x-request-id"]


def test_a_get_on_a_scoring_url_is_a_405_with_allow(admin: BackendClient, served: str):
    response = admin.http.get(f"/model-endpoint/{served}/Production/invocations")
    assert_envelope(response, 405, "METHOD_NOT_ALLOWED")
    assert response.headers["allow"] == "POST"


def test_mlflow_failures_leave_as_json_envelopes(admin: BackendClient, backend: BackendProcess):
    webhook = {
        "name": "w",
        "url": "http://127.0.0.1:9/hook",
        "events": [{"entity": "model_version", "action": "created"}],
    }
    response = admin.http.post("/api/2.0/mlflow/webhooks", json=webhook)
    assert "entity" in assert_envelope(response, 400, "INVALID_PARAMETER_VALUE")["message"]
    for path in ("/api/2.0/mlflow/no-such-route", "/ajax-api/2.0/mlflow/nothing/here"):
        response = admin.http.post(path, json={})
        assert response.status_code == 404 and response.headers["content-type"].startswith("application/json")


def test_an_unexpected_exception_is_a_500_envelope_whose_id_is_in_the_log():
    """The outermost layer, in process: an exception anywhere inside it (middleware included)."""
    import asyncio
    import logging

    from rtserve.server.middleware import ErrorLayer

    async def broken(scope, receive, send):
        raise RuntimeError("a bug in a middleware")

    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logging.getLogger("rtserve").addHandler(handler)
    try:

        async def call() -> httpx.Response:
            transport = httpx.ASGITransport(app=ErrorLayer(broken))
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                return await client.get("/anything")

        response = asyncio.run(call())
    finally:
        logging.getLogger("rtserve").removeHandler(handler)
    body = assert_envelope(response, 500, "INTERNAL_ERROR")
    request_id = body["details"][0]["request_id"]
    assert request_id in body["message"]
    logged = [r for r in records if request_id in r.getMessage()]
    assert logged and logged[0].exc_info is not None and "a bug in a middleware" in str(logged[0].exc_info[1])


# -- 10. replicas hold no credential of the backend ----------------------------------------------------
def test_replicas_hold_no_admin_credential(admin: BackendClient, backend: BackendProcess, served: str):
    logs = admin.call(
        "POST", f"{PREVIEW}/get-version-logs", json={"registered_model_name": served, "endpoint_version_name": "1"}
    )
    pids = {int(pid) for pid in re.findall(r"\(pid (\d+)\)", logs["logs"])}
    assert pids
    for pid in pids:
        environ = Path(f"/proc/{pid}/environ")
        if not environ.exists():
            continue
        variables = dict(entry.split(b"=", 1) for entry in environ.read_bytes().split(b"\0") if b"=" in entry)
        assert backend.admin_token.encode() not in b"".join(variables.values())
        assert b"MLFLOW_TRACKING_TOKEN" not in variables and b"RTSERVE_ADMIN_TOKEN" not in variables
