"""Secrets and environment variables, end to end on a live backend: Databricks' secrets API driven by the
Databricks SDK, `rtserve secrets`, and a served entity whose model code sees a plain variable and a
resolved secret, while the value appears in no API answer, log or database file."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from mlflow.models import infer_signature

from rtserve.server.client import BackendClient
from rtserve.server.process import BackendProcess
from tests.registry_helpers import register_code_model
from tests.tokens import create_token

pytestmark = pytest.mark.api
MODEL = "environment-echo"
ENDPOINT = "secrets-echo"
SCOPE = "echo-scope"
VALUE = f"s3cr3t-{uuid.uuid4().hex}"  # unique, so that finding it anywhere is a leak
BODY = {"dataframe_split": {"columns": ["x"], "data": [[1.0]]}}


def workspace(backend: BackendProcess, token: str):
    from databricks.sdk import WorkspaceClient

    return WorkspaceClient(host=backend.url, token=token, auth_type="pat")


def secrets_cli(backend: BackendProcess, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "rtserve.server", "secrets", *args, "--data-dir", str(backend.data_dir)]
    return subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=120)


def register_echo() -> str:
    frame = pd.DataFrame({"x": [1.0]})
    answer = pd.DataFrame({"greeting": ["hi"], "api_token": ["t"], "blas_threads": ["1"]})
    return register_code_model(MODEL, "environment_echo.py", infer_signature(frame, answer))


@pytest.fixture(scope="module")
def versions(mlflow_client_env: str) -> tuple[str, str]:
    return register_echo(), register_echo()


@pytest.fixture(scope="module")
def endpoint(backend: BackendProcess, admin: BackendClient, versions: tuple[str, str]) -> Iterator[dict]:
    """Version 1 with a variable read at import time (a fresh interpreter), version 2 forked as usual."""
    assert secrets_cli(backend, "create-scope", SCOPE).returncode == 0
    put = secrets_cli(backend, "put", SCOPE, "api-token", stdin=VALUE + "\n")
    assert put.returncode == 0, put.stderr
    variables = {"GREETING": "hello", "API_TOKEN": f"{{{{secrets/{SCOPE}/api-token}}}}"}
    config = {
        "served_entities": [
            {"name": "fresh", "entity_name": MODEL, "entity_version": versions[0],
             "environment_vars": {**variables, "OMP_NUM_THREADS": "1"}},
            {"name": "forked", "entity_name": MODEL, "entity_version": versions[1], "environment_vars": variables},
        ],
        "traffic_config": {"routes": [{"served_model_name": "fresh", "traffic_percentage": 50},
                                      {"served_model_name": "forked", "traffic_percentage": 50}]},
    }  # fmt: skip
    admin.create_serving_endpoint(ENDPOINT, config)
    try:
        yield admin.wait_serving_settled(ENDPOINT, timeout=180)
    finally:
        admin.http.delete(f"/api/2.0/serving-endpoints/{ENDPOINT}")


def test_model_code_sees_the_plain_variable_and_the_resolved_secret(admin: BackendClient, endpoint: dict):
    for served in ("fresh", "forked"):
        response = admin.score_serving(ENDPOINT, BODY, served_model=served)
        assert response.status_code == 200, response.text
        row = response.json()["predictions"][0]
        assert (row["greeting"], row["api_token"]) == ("hello", VALUE)


def test_a_variable_read_at_import_time_takes_effect_in_a_fresh_interpreter(admin: BackendClient, endpoint: dict):
    fresh = admin.score_serving(ENDPOINT, BODY, served_model="fresh").json()["predictions"][0]
    forked = admin.score_serving(ENDPOINT, BODY, served_model="forked").json()["predictions"][0]

    assert fresh["blas_threads"] == "1"
    if (os.cpu_count() or 1) > 1:  # the fork server's BLAS took one thread per core
        assert forked["blas_threads"] != "1"


def test_the_secret_value_appears_in_no_api_answer_log_or_database_file(
    backend: BackendProcess, admin: BackendClient, endpoint: dict
):
    admin.score_serving(ENDPOINT, BODY, served_model="forked")
    api = "/api/2.0/serving-endpoints"
    answers = [
        admin.http.get(f"{api}/{ENDPOINT}").text,
        admin.http.get(api).text,
        admin.http.get("/api/2.0/preview/mlflow/endpoints-v2/get-event-history", params={
            "registered_model_name": MODEL}).text,
        admin.http.get(f"/api/2.0/secrets/list?scope={SCOPE}").text,
        admin.http.get("/api/2.0/secrets/get", params={"scope": SCOPE, "key": "api-token"}).text,
    ]  # fmt: skip
    for served in ("fresh", "forked"):
        answers.append(admin.http.get(f"{api}/{ENDPOINT}/served-models/{served}/logs").text)
        answers.append(admin.http.get(f"{api}/{ENDPOINT}/served-models/{served}/build-logs").text)
    detail = admin.http.get(f"{api}/{ENDPOINT}").json()
    assert detail["config"]["served_entities"][1]["environment_vars"]["API_TOKEN"] == "{{secrets/echo-scope/api-token}}"

    assert not [answer for answer in answers if VALUE in answer]
    files = [backend.log_path, *Path(backend.data_dir).rglob("*.log*"), *Path(backend.data_dir).glob("rtserve.db*")]
    assert not [str(path) for path in files if path.is_file() and VALUE.encode() in path.read_bytes()]


def test_the_secrets_key_is_private_and_outside_the_database(backend: BackendProcess, endpoint: dict):
    key = Path(backend.data_dir) / "secrets.key"

    assert key.stat().st_mode & 0o777 == 0o600


def test_the_databricks_sdk_manages_scopes_and_secrets_and_never_reads_one(backend: BackendProcess):
    from databricks.sdk.errors import NotFound, PermissionDenied, ResourceAlreadyExists

    secrets = workspace(backend, backend.admin_token).secrets
    secrets.create_scope("sdk-scope")
    secrets.put_secret("sdk-scope", "db-password", string_value="hunter2")
    secrets.put_secret("sdk-scope", "db-password", string_value="hunter3")  # replaced
    secrets.put_secret("sdk-scope", "binary", bytes_value="aGVsbG8=")

    assert "sdk-scope" in [scope.name for scope in secrets.list_scopes()]
    listed = {s.key: s.last_updated_timestamp for s in secrets.list_secrets("sdk-scope")}
    assert set(listed) == {"binary", "db-password"} and all(listed.values())
    with pytest.raises(PermissionDenied, match="readable by no API"):
        secrets.get_secret("sdk-scope", "db-password")
    with pytest.raises(ResourceAlreadyExists):
        secrets.create_scope("sdk-scope")
    with pytest.raises(NotFound, match="no-scope"):
        secrets.put_secret("no-scope", "k", string_value="v")
    secrets.delete_secret("sdk-scope", "binary")
    with pytest.raises(NotFound):
        secrets.delete_secret("sdk-scope", "binary")
    assert [s.key for s in secrets.list_secrets("sdk-scope")] == ["db-password"]
    secrets.delete_scope("sdk-scope")
    assert "sdk-scope" not in [scope.name for scope in secrets.list_scopes()]
    with pytest.raises(NotFound):
        list(secrets.list_secrets("sdk-scope"))


@pytest.mark.parametrize(
    ("path", "body", "words"),
    [
        ("/api/2.0/secrets/scopes/create", {"scope": "bad scope"}, "'scope' must be"),
        ("/api/2.0/secrets/scopes/create", {"scope": "s", "scope_backend_type": "AZURE_KEYVAULT"}, "DATABRICKS"),
        ("/api/2.0/secrets/scopes/create", {"scope": "s", "colour": "red"}, "'colour'"),
        ("/api/2.0/secrets/put", {"scope": SCOPE, "key": "k"}, "exactly one of 'string_value'"),
        ("/api/2.0/secrets/put", {"scope": SCOPE, "key": "a/b", "string_value": "v"}, "'key' must be"),
        ("/api/2.0/secrets/put", {"scope": SCOPE, "key": "k", "bytes_value": "not base64!"}, "'bytes_value'"),
        ("/api/2.0/secrets/put", {"scope": SCOPE, "key": "k", "string_value": "v" * 131073}, "at most 131072"),
    ],
)
def test_a_bad_secrets_request_is_refused_naming_the_field(
    admin: BackendClient, endpoint: dict, path: str, body: dict, words: str
):
    response = admin.http.post(path, json=body)

    assert response.status_code == 400, response.text
    assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE" and words in response.json()["message"]


def test_only_a_manager_may_touch_secrets(backend: BackendProcess, admin: BackendClient, endpoint: dict):
    querier, _ = create_token(backend, "CAN_QUERY")
    headers = {"Authorization": f"Bearer {querier}"}

    listed = admin.http.get("/api/2.0/secrets/scopes/list", headers=headers)
    put = admin.http.post(
        "/api/2.0/secrets/put", json={"scope": SCOPE, "key": "k", "string_value": "v"}, headers=headers
    )

    assert (listed.status_code, put.status_code) == (403, 403)
    assert put.json()["error_code"] == "PERMISSION_DENIED"


def test_a_reference_to_a_missing_secret_is_refused_naming_scope_and_key(
    admin: BackendClient, versions: tuple[str, str]
):
    entity = {"entity_name": MODEL, "entity_version": versions[0], "environment_vars": {"A": "{{secrets/nope/gone}}"}}

    body = {"name": "missing-secret", "config": {"served_entities": [entity]}}
    response = admin.http.post("/api/2.0/serving-endpoints", json=body)

    assert response.status_code == 400, response.text
    assert "secret 'gone' of scope 'nope'" in response.json()["message"]
    assert admin.http.get("/api/2.0/serving-endpoints/missing-secret").status_code == 404


def test_another_endpoint_serving_the_version_with_other_variables_is_refused(
    admin: BackendClient, endpoint: dict, versions: tuple[str, str]
):
    entity = {"entity_name": MODEL, "entity_version": versions[1], "environment_vars": {"GREETING": "bye"}}

    body = {"name": "other-vars", "config": {"served_entities": [entity]}}
    response = admin.http.post("/api/2.0/serving-endpoints", json=body)

    assert response.status_code == 400 and f"serving endpoint '{ENDPOINT}'" in response.json()["message"]


def test_the_cli_lists_keys_but_never_values(backend: BackendProcess, endpoint: dict):
    listed = secrets_cli(backend, "list", SCOPE)
    scopes = secrets_cli(backend, "list-scopes")
    missing = secrets_cli(backend, "delete", "no-such-scope", "k")

    assert listed.returncode == 0 and "api-token" in listed.stdout and VALUE not in listed.stdout + listed.stderr
    assert SCOPE in scopes.stdout
    assert missing.returncode == 1 and "Scope 'no-such-scope' does not exist" in missing.stderr


def test_a_secret_deleted_under_a_served_entity_fails_its_next_replica_by_name_and_putting_it_back_heals(
    backend: BackendProcess, admin: BackendClient, endpoint: dict
):
    version = register_echo()
    name, served = "secrets-vanishing", f"{MODEL}-{version}"
    admin.call("POST", "/api/2.0/secrets/put", json={"scope": SCOPE, "key": "vanishing", "string_value": "v1"})
    entity = {
        "entity_name": MODEL,
        "entity_version": version,
        "environment_vars": {"API_TOKEN": f"{{{{secrets/{SCOPE}/vanishing}}}}"},
    }
    admin.create_serving_endpoint(name, {"served_entities": [entity]})
    try:
        admin.wait_serving_settled(name)
        logs = admin.http.get(f"/api/2.0/serving-endpoints/{name}/served-models/{served}/logs").json()["logs"]
        pid = int(re.search(r"\(pid (\d+)\)", logs).group(1))
        admin.call("POST", "/api/2.0/secrets/delete", json={"scope": SCOPE, "key": "vanishing"})
        os.kill(pid, signal.SIGKILL)

        failed = wait_for_deployment(admin, name, "DEPLOYMENT_FAILED")
        assert f"secret 'vanishing' does not exist in scope '{SCOPE}'" in failed["deployment_state_message"]

        admin.call("POST", "/api/2.0/secrets/put", json={"scope": SCOPE, "key": "vanishing", "string_value": "v2"})
        wait_for_deployment(admin, name, "DEPLOYMENT_READY")
        assert admin.score_serving(name, BODY).json()["predictions"][0]["api_token"] == "v2"
    finally:
        admin.http.delete(f"/api/2.0/serving-endpoints/{name}")


def wait_for_deployment(admin: BackendClient, name: str, deployment: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        [entity] = admin.serving_endpoint(name)["config"]["served_entities"]
        if entity["state"]["deployment"] == deployment:
            return entity["state"]
        assert time.monotonic() < deadline, entity["state"]
        time.sleep(0.2)
