"""A corpus of malformed requests: each gets the Databricks envelope and the right status, never a 500."""

from __future__ import annotations

import httpx
import pytest

from rtserve.server.client import BackendClient
from tests.conftest import ADMIN_TOKEN

pytestmark = pytest.mark.api
PREVIEW = "/api/2.0/preview/mlflow/endpoints-v2"
TRANSITION = "/api/2.0/mlflow/databricks/model-versions/transition-stage"
GOOD_ROW = {"sepal length (cm)": 5.1, "sepal width (cm)": 3.5, "petal length (cm)": 1.4, "petal width (cm)": 0.2}
COLUMNS = list(GOOD_ROW)
JSON = "application/json"

# (id, method, path, content-type, body, expected status, expected error_code or None for any)
CONTROL = [
    ("enable-no-body", "POST", f"{PREVIEW}/enable", JSON, b"", 400, "INVALID_PARAMETER_VALUE"),
    ("enable-not-json", "POST", f"{PREVIEW}/enable", JSON, b"{nope", 400, "MALFORMED_REQUEST"),
    ("enable-json-list", "POST", f"{PREVIEW}/enable", JSON, b"[1, 2]", 400, "MALFORMED_REQUEST"),
    (
        "enable-name-number-list",
        "POST",
        f"{PREVIEW}/enable",
        JSON,
        b'{"registered_model_name": [1]}',
        400,
        "INVALID_PARAMETER_VALUE",
    ),
    (
        "enable-name-bool",
        "POST",
        f"{PREVIEW}/enable",
        JSON,
        b'{"registered_model_name": true}',
        400,
        "INVALID_PARAMETER_VALUE",
    ),
    (
        "enable-unknown-model",
        "POST",
        f"{PREVIEW}/enable",
        JSON,
        b'{"registered_model_name": "ghost"}',
        404,
        "RESOURCE_DOES_NOT_EXIST",
    ),
    ("enable-wrong-method", "GET", f"{PREVIEW}/enable", JSON, b"", 405, None),
    (
        "disable-not-enabled",
        "POST",
        f"{PREVIEW}/disable",
        JSON,
        b'{"registered_model_name": "ghost"}',
        404,
        "RESOURCE_DOES_NOT_EXIST",
    ),
    ("status-missing-name", "GET", f"{PREVIEW}/get-status", JSON, b"", 400, "INVALID_PARAMETER_VALUE"),
    (
        "status-unknown",
        "GET",
        f"{PREVIEW}/get-status?registered_model_name=ghost",
        JSON,
        b"",
        404,
        "RESOURCE_DOES_NOT_EXIST",
    ),
    (
        "versions-unknown",
        "GET",
        f"{PREVIEW}/list-versions?registered_model_name=ghost",
        JSON,
        b"",
        404,
        "RESOURCE_DOES_NOT_EXIST",
    ),
    (
        "version-status-missing-version",
        "GET",
        f"{PREVIEW}/get-version-status?registered_model_name=ghost",
        JSON,
        b"",
        400,
        "INVALID_PARAMETER_VALUE",
    ),
    (
        "compute-no-spec",
        "PUT",
        f"{PREVIEW}/update-compute-config",
        JSON,
        b'{"registered_model_name": "iris-tests", "stage": "Staging"}',
        400,
        "INVALID_PARAMETER_VALUE",
    ),
    (
        "compute-bad-size",
        "PUT",
        f"{PREVIEW}/update-compute-config",
        JSON,
        b'{"registered_model_name": "iris-tests", "stage": "Staging", "desired_workload_config_spec": '
        b'{"workload_size_id": "Huge"}}',
        400,
        "INVALID_PARAMETER_VALUE",
    ),
    (
        "compute-bad-stage",
        "PUT",
        f"{PREVIEW}/update-compute-config",
        JSON,
        b'{"registered_model_name": "iris-tests", "stage": "Archived", "desired_workload_config_spec": '
        b'{"workload_size_id": "Small"}}',
        400,
        "INVALID_PARAMETER_VALUE",
    ),
    (
        "compute-bad-scale-to-zero",
        "PUT",
        f"{PREVIEW}/update-compute-config",
        JSON,
        b'{"registered_model_name": "iris-tests", "stage": "Staging", "desired_workload_config_spec": '
        b'{"workload_size_id": "Small", "scale_to_zero_enabled": "yes"}}',
        400,
        "INVALID_PARAMETER_VALUE",
    ),
    (
        "compute-spec-is-string",
        "PUT",
        f"{PREVIEW}/update-compute-config",
        JSON,
        b'{"registered_model_name": "iris-tests", "stage": "Staging", "desired_workload_config_spec": "Small"}',
        400,
        "INVALID_PARAMETER_VALUE",
    ),
    (
        "compute-not-enabled",
        "PUT",
        f"{PREVIEW}/update-compute-config",
        JSON,
        b'{"registered_model_name": "ghost", "stage": "Staging", "desired_workload_config_spec": '
        b'{"workload_size_id": "Small"}}',
        404,
        "RESOURCE_DOES_NOT_EXIST",
    ),
    (
        "logs-unknown-replica",
        "POST",
        f"{PREVIEW}/get-version-logs",
        JSON,
        b'{"registered_model_name": "iris-tests", "endpoint_version_name": "1", "replica_id": "nope"}',
        404,
        "RESOURCE_DOES_NOT_EXIST",
    ),
    (
        "transition-bad-stage",
        "POST",
        TRANSITION,
        JSON,
        b'{"name": "iris-tests", "version": "1", "stage": "Prod"}',
        400,
        "INVALID_PARAMETER_VALUE",
    ),
    (
        "transition-missing-version",
        "POST",
        TRANSITION,
        JSON,
        b'{"name": "iris-tests", "stage": "Staging"}',
        400,
        "INVALID_PARAMETER_VALUE",
    ),
    (
        "transition-unknown-version",
        "POST",
        TRANSITION,
        JSON,
        b'{"name": "iris-tests", "version": "999", "stage": "Staging"}',
        404,
        "RESOURCE_DOES_NOT_EXIST",
    ),
    (
        "transition-unknown-model",
        "POST",
        TRANSITION,
        JSON,
        b'{"name": "ghost", "version": "1", "stage": "Staging"}',
        404,
        "RESOURCE_DOES_NOT_EXIST",
    ),
    (
        "transition-archive-not-bool",
        "POST",
        TRANSITION,
        JSON,
        b'{"name": "iris-tests", "version": "1", "stage": "Staging", "archive_existing_versions": 3}',
        400,
        "INVALID_PARAMETER_VALUE",
    ),
    ("unknown-route", "GET", "/api/2.0/preview/mlflow/endpoints-v2/nope", JSON, b"", 404, "ENDPOINT_NOT_FOUND"),
    (
        "control-body-too-large",
        "POST",
        f"{PREVIEW}/enable",
        JSON,
        b'{"x": "' + b"a" * (2 * 1024 * 1024) + b'"}',
        413,
        "REQUEST_LIMIT_EXCEEDED",
    ),
]


def scoring(case_id: str, target: str, content_type: str, body: bytes, status: int, code: str | None):
    return (case_id, "POST", f"/model-endpoint/iris-tests/{target}/invocations", content_type, body, status, code)


SCORING = [
    scoring("score-empty", "Staging", JSON, b"", 400, None),
    scoring("score-not-json", "Staging", JSON, b"{not json", 400, None),
    scoring("score-json-list", "Staging", JSON, b"[[1, 2, 3, 4]]", 400, None),
    scoring("score-json-null", "Staging", JSON, b"null", 400, None),
    scoring("score-no-format-key", "Staging", JSON, b'{"data": [[1, 2, 3, 4]]}', 400, None),
    scoring(
        "score-two-format-keys", "Staging", JSON, b'{"inputs": [[1, 2, 3, 4]], "instances": [[1, 2, 3, 4]]}', 400, None
    ),
    scoring("score-split-no-columns", "Staging", JSON, b'{"dataframe_split": {"data": [[1, 2, 3, 4]]}}', 400, None),
    scoring(
        "score-split-data-string",
        "Staging",
        JSON,
        b'{"dataframe_split": {"columns": ["a"], "data": "oops"}}',
        400,
        None,
    ),
    scoring(
        "score-records-missing-column",
        "Staging",
        JSON,
        b'{"dataframe_records": [{"sepal length (cm)": 5.1}]}',
        400,
        None,
    ),
    scoring(
        "score-records-wrong-type",
        "Staging",
        JSON,
        b'{"dataframe_records": [{"sepal length (cm)": "tall", "sepal width (cm)": 3.5, '
        b'"petal length (cm)": 1.4, "petal width (cm)": 0.2}]}',
        400,
        None,
    ),
    scoring("score-records-not-list", "Staging", JSON, b'{"dataframe_records": 5}', 400, None),
    scoring("score-instances-ragged", "Staging", JSON, b'{"instances": [[1, 2], [1, 2, 3]]}', 400, None),
    scoring("score-inputs-string", "Staging", JSON, b'{"inputs": "hello"}', 400, None),
    scoring(
        "score-params-not-dict",
        "Staging",
        JSON,
        b'{"dataframe_records": [{"sepal length (cm)": 5.1}], "params": 3}',
        400,
        None,
    ),
    scoring("score-csv-garbage", "Staging", "text/csv", b'"unclosed\n1,2', 400, None),
    scoring("score-csv-wrong-columns", "Staging", "text/csv", b"a,b\n1,2\n", 400, None),
    scoring("score-unsupported-type", "Staging", "application/xml", b"<x/>", 415, None),
    scoring("score-unknown-stage", "Prod", JSON, b'{"inputs": [[1, 2, 3, 4]]}', 404, "RESOURCE_DOES_NOT_EXIST"),
    scoring("score-unknown-version", "999", JSON, b'{"inputs": [[1, 2, 3, 4]]}', 404, "RESOURCE_DOES_NOT_EXIST"),
    scoring(
        "score-too-large",
        "Staging",
        JSON,
        b'{"inputs": [' + b"1.0," * (5 * 1024 * 1024) + b"1.0]}",
        413,
        "REQUEST_LIMIT_EXCEEDED",
    ),
    (
        "score-unknown-model",
        "POST",
        "/model-endpoint/ghost/Production/invocations",
        JSON,
        b"{}",
        404,
        "RESOURCE_DOES_NOT_EXIST",
    ),
    (
        "score-deep-nesting",
        "POST",
        "/model/iris-tests/Staging/invocations",
        JSON,
        b'{"inputs": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        400,
        None,
    ),
]


@pytest.fixture(scope="module")
def staged(admin: BackendClient, iris_model: str) -> str:
    admin.enable(iris_model)
    admin.transition(iris_model, "2", "Staging")
    admin.wait_ready(iris_model, ["2"])
    return iris_model


@pytest.mark.parametrize(
    ("method", "path", "content_type", "body", "status", "code"),
    [case[1:] for case in CONTROL + SCORING],
    ids=[case[0] for case in CONTROL + SCORING],
)
def test_malformed_request_gets_a_clear_error(backend, staged, method, path, content_type, body, status, code):
    response = httpx.request(
        method,
        f"{backend.url}{path}",
        content=body,
        timeout=60,
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": content_type},
    )
    assert response.status_code == status, response.text
    payload = response.json()
    assert isinstance(payload.get("error_code"), str) and isinstance(payload.get("message"), str), payload
    assert payload["message"], payload
    if code is not None:
        assert payload["error_code"] == code


def test_the_corpus_is_large_enough():
    assert len(CONTROL) + len(SCORING) >= 40


def test_the_backend_still_serves_after_the_corpus(admin: BackendClient, staged: str):
    response = admin.score(staged, "Staging", {"dataframe_records": [GOOD_ROW]})
    assert response.status_code == 200, response.text
