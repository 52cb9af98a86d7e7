"""Inference tables against a live backend: a serving endpoint's requests and responses logged to Delta tables
(ai_gateway.inference_table_config, the legacy config.auto_capture_config, usage_tracking_config), switched on
and off with the API, read back with deltalake, pandas and DuckDB."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from deltalake import DeltaTable

from rtserve.server.client import BackendClient
from rtserve.server.demo import request_bodies
from rtserve.server.demo_model import register_demo_model
from rtserve.server.process import BackendProcess
from tests.conftest import ADMIN_TOKEN, mlflow_pointing_at
from tests.docs_examples import blocks

pytestmark = pytest.mark.api
API = "/api/2.0/serving-endpoints"
MODEL = "iris-logged"
ROW = request_bodies()["dataframe_split"][1]
GATEWAY_TABLE = {"catalog_name": "main", "schema_name": "serving", "table_name_prefix": "logged"}


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackendProcess]:
    root = tmp_path_factory.mktemp("tables")
    process = BackendProcess(
        root / "data", admin_token=ADMIN_TOKEN, env={"RTSERVE_INFERENCE_TABLE_FLUSH_SECONDS": "0.2"}
    )
    process.start()
    with mlflow_pointing_at(process.url, ADMIN_TOKEN):
        register_demo_model(process.url, name=MODEL, versions=1)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def admin(backend: BackendProcess) -> Iterator[BackendClient]:
    client = BackendClient(backend.url, ADMIN_TOKEN)
    yield client
    client.close()


@pytest.fixture
def endpoint(admin: BackendClient) -> Iterator[str]:
    body = {
        "name": "logged",
        "config": {"served_entities": [{"name": "current", "entity_name": MODEL, "entity_version": "1"}]},
        "ai_gateway": {"inference_table_config": GATEWAY_TABLE, "usage_tracking_config": {"enabled": True}},
    }
    assert admin.http.post(API, json=body).status_code == 200
    admin.wait_serving_settled("logged")
    yield "logged"
    admin.http.delete(f"{API}/logged")


def table(backend: BackendProcess, *parts: str) -> Path:
    return backend.data_dir.joinpath("warehouse", *parts)


def rows_when(path: Path, count: int, timeout: float = 20) -> int:
    """The table's row count once it reaches `count` (or after `timeout`)."""
    deadline = time.monotonic() + timeout
    while True:
        n = DeltaTable(str(path)).to_pyarrow_table().num_rows if (path / "_delta_log").exists() else 0
        if n >= count or time.monotonic() > deadline:
            return n
        time.sleep(0.1)


def test_each_answered_request_is_a_row_of_the_payload_and_usage_tables(
    backend: BackendProcess, admin: BackendClient, endpoint: str
):
    answers = [admin.score_serving(endpoint, {**ROW, "client_request_id": f"mine-{i}"}) for i in range(5)]
    assert [answer.status_code for answer in answers] == [200] * 5, answers[0].text
    payload = table(backend, "main", "serving", "logged_payload")

    assert rows_when(payload, 5) == 5
    frame = DeltaTable(str(payload)).to_pandas().sort_values("timestamp_ms")
    assert list(frame["client_request_id"]) == [f"mine-{i}" for i in range(5)]
    assert list(frame["response"]) == [answer.text for answer in answers]
    first = frame.iloc[0]
    assert first["status_code"] == 200 and first["served_entity_id"] == "current" and first["requester"] == "admin"
    assert dict(first["request_metadata"])["model_name"] == MODEL
    assert first["execution_time_ms"] >= 0 and len(first["databricks_request_id"]) > 0
    assert rows_when(table(backend, "system", "serving", "endpoint_usage"), 5) >= 5
    metrics = admin.http.get("/metrics").text
    assert 'rtserve_inference_table_rows_total{outcome="written",table="payload"}' in metrics
    assert "rtserve_inference_table_dropped_requests_total 0.0" in metrics

    import duckdb

    dataset = DeltaTable(str(payload)).to_pyarrow_dataset()  # noqa: F841 - DuckDB reads the variable by name
    assert duckdb.sql("SELECT count(*) FROM dataset WHERE status_code = 200").fetchall() == [(5,)]


def test_put_ai_gateway_turns_logging_off_and_on(backend: BackendProcess, admin: BackendClient, endpoint: str):
    payload = table(backend, "main", "serving", "logged_payload")
    start = rows_when(payload, 0, timeout=0)  # an earlier test's rows may be there
    admin.score_serving(endpoint, ROW)
    before = rows_when(payload, start + 1)
    assert before == start + 1

    off = admin.http.put(f"{API}/{endpoint}/ai-gateway", json={})
    assert off.status_code == 200 and "inference_table_config" not in off.json()
    assert "ai_gateway" not in admin.serving_endpoint(endpoint)
    assert admin.score_serving(endpoint, ROW).status_code == 200
    time.sleep(1)
    assert rows_when(payload, before + 1, timeout=0) == before

    on = admin.http.put(f"{API}/{endpoint}/ai-gateway", json={"inference_table_config": GATEWAY_TABLE})
    assert on.json()["inference_table_config"] == {**GATEWAY_TABLE, "enabled": True}
    admin.score_serving(endpoint, ROW)
    assert rows_when(payload, before + 1) == before + 1


def test_the_legacy_auto_capture_config_is_answered_with_its_state_and_logs(
    backend: BackendProcess, admin: BackendClient
):
    capture = {"catalog_name": "legacy", "schema_name": "serving", "enabled": True}
    body = {
        "name": "captured",
        "config": {
            "served_models": [{"model_name": MODEL, "model_version": "1", "workload_size": "Small"}],
            "auto_capture_config": capture,
        },
    }
    try:
        assert admin.http.post(API, json=body).status_code == 200
        detail = admin.wait_serving_settled("captured")
        assert detail["config"]["auto_capture_config"] == {
            **capture,
            "table_name_prefix": "captured",
            "state": {"payload_table": {"name": "legacy.serving.captured_payload", "status": "ACTIVE"}},
        }
        admin.score_serving("captured", ROW)
        assert rows_when(table(backend, "legacy", "serving", "captured_payload"), 1) == 1

        update = {**body["config"], "auto_capture_config": {**capture, "enabled": False}}
        assert admin.http.put(f"{API}/captured/config", json=update).status_code == 200
        # The change needs no new replica, so it may be promoted before the next read: wait for it.
        detail = admin.wait_serving_settled("captured")
        assert detail["config"]["auto_capture_config"]["state"]["payload_table"]["status"] == "DISABLED"
    finally:
        admin.http.delete(f"{API}/captured")


@pytest.mark.parametrize(
    ("ai_gateway", "named"),
    [
        ({"inference_table_config": {"schema_name": "serving"}}, "ai_gateway.inference_table_config.catalog_name"),
        ({"inference_table_config": {**GATEWAY_TABLE, "catalog_name": "../etc"}}, "catalog_name"),
        ({"inference_table_config": {**GATEWAY_TABLE, "format": "csv"}}, "format"),
        ({"inference_table_config": {**GATEWAY_TABLE, "enabled": "yes"}}, "enabled"),
        ({"usage_tracking_config": {"enabled": 1}}, "usage_tracking_config.enabled"),
    ],
)
def test_a_bad_table_setting_is_refused_by_name(admin: BackendClient, ai_gateway: dict, named: str):
    body = {
        "name": "refused-table",
        "config": {"served_entities": [{"entity_name": MODEL, "entity_version": "1"}]},
        "ai_gateway": ai_gateway,
    }
    response = admin.http.post(API, json=body)

    assert response.status_code == 400 and response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert named in response.json()["message"]
    assert admin.http.get(f"{API}/refused-table").status_code == 404


def test_two_payload_tables_at_once_are_refused(admin: BackendClient):
    body = {
        "name": "refused-table",
        "config": {
            "served_entities": [{"entity_name": MODEL, "entity_version": "1"}],
            "auto_capture_config": GATEWAY_TABLE,
        },
        "ai_gateway": {"inference_table_config": GATEWAY_TABLE},
    }
    response = admin.http.post(API, json=body)

    assert response.status_code == 400 and "not both" in response.json()["message"]


def reading_example(language: str, needle: str) -> str:
    """The example of docs/inference-tables.md that uses `needle`, as written."""
    examples = blocks("docs/inference-tables.md", "## Reading the tables")
    return next(block.code for block in examples if block.language == language and needle in block.code)


def run_example(code: str, backend: BackendProcess, endpoint: str) -> str:
    """Run a documented example on this backend's table (its path in place of the documented one)."""
    path = str(table(backend, "main", "serving", f"{GATEWAY_TABLE['table_name_prefix']}_payload"))
    script = code.replace(".rtserve/warehouse/main/serving/iris_payload", path)
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_the_documented_pandas_and_duckdb_examples_read_the_table(
    backend: BackendProcess, admin: BackendClient, endpoint: str
):
    admin.score_serving(endpoint, ROW)
    assert rows_when(table(backend, "main", "serving", "logged_payload"), 1) >= 1

    assert '{"predictions":' in run_example(reading_example("python", "to_pandas"), backend, endpoint)
    assert "[(200, " in run_example(reading_example("python", "duckdb"), backend, endpoint)


@pytest.mark.spark
def test_the_documented_spark_example_reads_the_table(backend: BackendProcess, admin: BackendClient, endpoint: str):
    admin.score_serving(endpoint, ROW)
    assert rows_when(table(backend, "main", "serving", "logged_payload"), 1) >= 1

    assert "Row(count(1)=" in run_example(reading_example("python", "pyspark"), backend, endpoint)
