"""Authentication and permissions on every route, as a client sees them."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import pytest

from rtserve.server.process import BackendProcess
from tests.conftest import ADMIN_TOKEN
from tests.tokens import create_token, revoke_token

pytestmark = pytest.mark.api
STATUS = "/api/2.0/preview/mlflow/endpoints-v2/get-supported-workload-sizes"
ENABLE = "/api/2.0/preview/mlflow/endpoints-v2/enable"


def test_token_values_are_never_listed(backend: BackendProcess):
    token, token_id = create_token(backend, "CAN_VIEW")
    listed = subprocess.run(
        [sys.executable, "-m", "rtserve.server", "tokens", "list", "--data-dir", str(backend.data_dir)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert token_id in listed
    assert token not in listed


def test_health_needs_no_token(backend: BackendProcess):
    assert httpx.get(f"{backend.url}/health").text == "OK"


@pytest.mark.parametrize("path", [STATUS, "/api/2.0/mlflow/registered-models/search", "/model/x/1/invocations"])
def test_every_other_route_needs_a_token(backend: BackendProcess, path: str):
    response = httpx.get(f"{backend.url}{path}")
    assert response.status_code == 401
    assert response.json()["error_code"] == "UNAUTHENTICATED"
    assert httpx.get(f"{backend.url}{path}", headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_bearer_and_basic_auth_both_work(backend: BackendProcess):
    assert httpx.get(f"{backend.url}{STATUS}", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).status_code == 200
    assert httpx.get(f"{backend.url}{STATUS}", auth=("token", ADMIN_TOKEN)).status_code == 200
    assert httpx.get(f"{backend.url}{STATUS}", auth=("alice", ADMIN_TOKEN)).status_code == 401


def test_a_query_token_can_read_and_score_but_not_manage(backend: BackendProcess):
    token, _ = create_token(backend, "CAN_QUERY")
    headers = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{backend.url}{STATUS}", headers=headers).status_code == 200
    denied = httpx.post(f"{backend.url}{ENABLE}", json={"registered_model_name": "x"}, headers=headers)
    assert denied.status_code == 403 and denied.json()["error_code"] == "PERMISSION_DENIED"
    # The embedded MLflow registry applies the same rule: reading is fine, registering is not.
    assert httpx.get(f"{backend.url}/api/2.0/mlflow/registered-models/search", headers=headers).status_code == 200
    create = httpx.post(f"{backend.url}/api/2.0/mlflow/registered-models/create", json={"name": "x"}, headers=headers)
    assert create.status_code == 403


def test_a_view_token_cannot_score(backend: BackendProcess):
    token, _ = create_token(backend, "CAN_VIEW")
    response = httpx.post(
        f"{backend.url}/model/anything/1/invocations",
        json={"inputs": [1]},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 403


def test_a_revoked_token_stops_working(backend: BackendProcess):
    token, token_id = create_token(backend, "CAN_MANAGE")
    headers = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{backend.url}{STATUS}", headers=headers).status_code == 200
    revoke_token(backend, token_id)
    deadline = time.monotonic() + 10
    while httpx.get(f"{backend.url}{STATUS}", headers=headers).status_code != 401:
        assert time.monotonic() < deadline, "revoked token still accepted after 10 s"
        time.sleep(0.5)


def test_a_generated_admin_token_is_written_with_mode_0600(tmp_path):
    backend = BackendProcess(tmp_path / "data", admin_token="")
    backend.env = {"RTSERVE_ADMIN_TOKEN": ""}
    with backend:
        token_file = tmp_path / "data" / "admin-token"
        assert oct(token_file.stat().st_mode & 0o777) == "0o600"
        token = token_file.read_text().strip()
        assert httpx.get(f"{backend.url}{STATUS}", headers={"Authorization": f"Bearer {token}"}).status_code == 200
