"""A serving endpoint's email_notifications: set at creation or with the SDK's update_notifications, answered
by GET, and delivered when a config update finishes: through a real SMTP server (aiosmtpd) when the backend
has one, recorded as an event when it has none."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rtserve.server.client import BackendClient
from rtserve.server.demo_model import register_demo_model
from rtserve.server.process import BackendProcess
from tests.conftest import ADMIN_TOKEN, mlflow_pointing_at
from tests.registry_helpers import register_code_model
from tests.smtp_sink import Inbox, smtp_sink

pytestmark = pytest.mark.api
API = "/api/2.0/serving-endpoints"
MODEL = "iris-notified"
OPS, ML = "ops@example.com", "ml@example.com"


def workspace(backend: BackendProcess):
    from databricks.sdk import WorkspaceClient

    return WorkspaceClient(host=backend.url, token=backend.admin_token, auth_type="pat")


def served(model: str, name: str) -> dict:
    return {"name": name, "entity_name": model, "entity_version": "1", "workload_size": "Small"}


@pytest.fixture(scope="module")
def endpoint(admin: BackendClient, mlflow_client_env: str) -> Iterator[str]:
    register_demo_model(mlflow_client_env, name=MODEL, versions=1)
    body = {
        "name": "notified",
        "config": {"served_entities": [served(MODEL, "current")]},
        "email_notifications": {"on_update_success": [ML]},
    }
    assert admin.http.post(API, json=body).status_code == 200
    yield "notified"
    admin.http.delete(f"{API}/notified")


def test_the_sdks_update_notifications_replaces_them_and_get_answers_them(backend: BackendProcess, endpoint: str):
    from databricks.sdk.service.serving import EmailNotifications

    client = workspace(backend).serving_endpoints
    assert client.get(endpoint).email_notifications == EmailNotifications(on_update_success=[ML])

    answer = client.update_notifications(endpoint, email_notifications=EmailNotifications(on_update_failure=[OPS]))

    assert answer.name == endpoint and answer.email_notifications == EmailNotifications(on_update_failure=[OPS])
    assert client.get(endpoint).email_notifications == EmailNotifications(on_update_failure=[OPS])
    client.update_notifications(endpoint, email_notifications=EmailNotifications(on_update_success=[ML]))
    assert client.get(endpoint).email_notifications == EmailNotifications(on_update_success=[ML])


def test_a_bad_address_is_refused_by_name_and_nothing_changes(admin: BackendClient, endpoint: str):
    response = admin.http.patch(
        f"{API}/{endpoint}/notifications", json={"email_notifications": {"on_update_failure": [OPS, "ops at example"]}}
    )

    assert response.status_code == 400, response.text
    assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "'ops at example'" in response.json()["message"]
    assert admin.call("GET", f"{API}/{endpoint}")["email_notifications"] == {"on_update_success": [ML]}


def test_an_unknown_endpoint_or_field_is_refused(admin: BackendClient, endpoint: str):
    missing = admin.http.patch(f"{API}/no-such-endpoint/notifications", json={"email_notifications": {}})
    unknown = admin.http.patch(f"{API}/{endpoint}/notifications", json={"webhook_notifications": {}})

    assert (missing.status_code, missing.json()["error_code"]) == (404, "RESOURCE_DOES_NOT_EXIST")
    assert unknown.status_code == 400 and "webhook_notifications" in unknown.json()["message"]


def test_without_an_smtp_server_the_e_mail_is_recorded_as_an_event(admin: BackendClient, endpoint: str):
    admin.wait_serving_settled(endpoint)

    messages = [event["message"] for event in admin.events(MODEL)]

    wanted = f"Would e-mail {ML} (no SMTP server is set): rtserve: serving endpoint '{endpoint}' now serves config"
    assert any(message.startswith(wanted) for message in messages), messages


@pytest.fixture
def mailing_backend(tmp_path: Path) -> Iterator[tuple[BackendProcess, Inbox]]:
    """A backend of its own, configured with a real SMTP server on a free port."""
    with smtp_sink() as inbox:
        env = {
            "RTSERVE_SMTP_HOST": "127.0.0.1",
            "RTSERVE_SMTP_PORT": str(inbox.port),
            "RTSERVE_SMTP_FROM": "rt@example.com",
        }
        backend = BackendProcess(tmp_path / "data", admin_token=ADMIN_TOKEN, env=env, log_path=tmp_path / "backend.log")
        backend.start()
        try:
            yield backend, inbox
        finally:
            backend.stop()


def test_a_finished_update_e_mails_its_addresses_on_success_and_on_failure(
    mailing_backend: tuple[BackendProcess, Inbox],
):
    backend, inbox = mailing_backend
    with mlflow_pointing_at(backend.url, ADMIN_TOKEN):
        register_demo_model(backend.url, name=MODEL, versions=1)
        register_code_model("notified-failing", "failing_load.py")
    client = BackendClient(backend.url, ADMIN_TOKEN)
    try:
        body = {
            "name": "mailed",
            "config": {"served_entities": [served(MODEL, "good")]},
            "email_notifications": {"on_update_success": [ML, OPS], "on_update_failure": [OPS]},
        }
        assert client.http.post(API, json=body).status_code == 200
        client.wait_serving_settled("mailed")

        success = inbox.wait_for("'mailed' now serves config version 1")

        assert sorted(success.recipients) == sorted([ML, OPS])
        assert success.message["From"] == "rt@example.com"
        client.call("PUT", f"{API}/mailed/config", json={"served_entities": [served("notified-failing", "broken")]})

        failure = inbox.wait_for("'mailed' failed to update to config version 2")

        assert failure.recipients == [OPS]
        assert "weights.bin is missing" in failure.message.get_payload()
        time.sleep(1)  # a few more ticks: the failure is told once
        assert [m.subject for m in inbox.received].count(failure.subject) == 1
        metrics = client.http.get("/metrics").text
        assert 'rtserve_email_notifications_total{outcome="sent"} 2.0' in metrics
    finally:
        client.close()
