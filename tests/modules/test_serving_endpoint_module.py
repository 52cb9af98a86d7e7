"""modules/serving-endpoint: validated by the embedded Terraform and applied from plain HCL against the real app
(fake engine): two versions with a 90/10 split, a rate limit and a grant; an empty second plan; a new split in place;
destroy. Plan-time validation with the module's own messages, and no permissions resource without grants."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from rtserve.provider.install import Installation
from rtserve.provider.terraform import Terraform
from tests.fakes.app import AppServer
from tests.provider.terraform_helpers import failed_plan, served_app, write_main_tf

pytestmark = pytest.mark.e2e
MODULE = Path(__file__).resolve().parents[2] / "modules" / "serving-endpoint"
TWO_ENTITIES = """  served_entities = [
    { name = "current", model = "iris-classifier", version = "1" },
    { name = "candidate", model = "iris-classifier", version = "2", workload_size = "Medium" },
  ]"""
OUTPUTS = ("endpoint_id", "endpoint_url", "served_entity_urls", "traffic", "config_version", "permissions_id")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[AppServer]:
    with served_app(tmp_path, "iris-classifier", versions=2) as app:
        yield app


def write_root(tf: Terraform, host: str, module_args: str) -> None:
    """A root module calling the module (endpoint "canary") with `module_args`, passing its outputs on."""
    source = os.path.relpath(MODULE, tf.workdir)
    outputs = "".join(f'output "{name}" {{ value = module.canary.{name} }}\n' for name in OUTPUTS)
    body = f"""module "canary" {{
  source = "{source}"
  name   = "canary"
{module_args}
}}
{outputs}"""
    write_main_tf(tf, host, body)


def split(current: int, candidate: int) -> str:
    return f"""{TWO_ENTITIES}
  traffic         = {{ current = {current}, candidate = {candidate} }}
  rate_limits     = [{{ calls = 100 }}]
  access_control  = [{{ user_name = "alice", permission_level = "CAN_QUERY" }}]"""


def test_the_module_is_valid_on_its_own(tmp_path: Path, installation: Installation) -> None:
    for name in ("versions.tf", "variables.tf", "main.tf", "outputs.tf"):
        (tmp_path / name).write_text((MODULE / name).read_text())
    tf = Terraform(tmp_path, installation)
    assert tf.init().ok
    result = tf.validate()
    assert result.ok and result.errors == [], result.error_text()


def test_a_split_with_a_rate_limit_and_a_grant_applies_changes_in_place_and_destroys(
    terraform: Terraform, server: AppServer
) -> None:
    tf = terraform
    backend, url = server, server.url
    write_root(tf, url, split(90, 10))
    tf.init()

    assert str(tf.apply().summary) == "2 to add, 0 to change, 0 to destroy"
    endpoint = backend.serving_endpoints()["canary"]
    assert endpoint["config"]["routes"] == [
        {"served_model_name": "current", "traffic_percentage": 90},
        {"served_model_name": "candidate", "traffic_percentage": 10},
    ]
    assert [(e["name"], e["entity_version"], e["workload_size"]) for e in endpoint["config"]["served_entities"]] == [
        ("current", "1", "Small"),
        ("candidate", "2", "Medium"),
    ]
    assert [(limit["calls"], limit["key"]) for limit in endpoint["rate_limits"]] == [(100, "endpoint")]
    assert endpoint["acl"] == [{"user_name": "alice", "permission_level": "CAN_QUERY"}]  # replaces the creator's
    endpoint_url = f"{url}/serving-endpoints/canary"
    assert tf.output() == {
        "endpoint_id": "id-canary",
        "endpoint_url": f"{endpoint_url}/invocations",
        "served_entity_urls": {
            name: f"{endpoint_url}/served-models/{name}/invocations" for name in ("current", "candidate")
        },
        "traffic": {"current": 90, "candidate": 10},
        "config_version": 1,
        "permissions_id": "/serving-endpoints/id-canary",
    }
    assert not tf.plan().summary.has_changes

    # a new split is a config update of the endpoint, in place; the limit and the grant stay as they are
    write_root(tf, url, split(50, 50))
    assert [(c.address, c.action) for c in tf.plan().changes] == [
        ("module.canary.rtserve_serving_endpoint.this", "update")
    ]
    assert str(tf.apply().summary) == "0 to add, 1 to change, 0 to destroy"
    assert backend.serving_endpoints()["canary"]["config"]["config_version"] == 2
    assert tf.output()["traffic"] == {"current": 50, "candidate": 50}
    assert not tf.plan().summary.has_changes

    assert str(tf.destroy().summary) == "0 to add, 0 to change, 2 to destroy"
    assert backend.serving_endpoints() == {}


def test_without_grants_the_endpoint_keeps_its_default_grants_and_one_entity_gets_all_traffic(
    terraform: Terraform, server: AppServer
) -> None:
    tf = terraform
    backend, url = server, server.url
    write_root(tf, url, '  served_entities = [{ model = "iris-classifier", version = "1" }]')
    tf.init()

    assert str(tf.apply().summary) == "1 to add, 0 to change, 0 to destroy"
    assert backend.serving_endpoints()["canary"]["acl"] == [{"user_name": "admin", "permission_level": "CAN_MANAGE"}]
    outputs = tf.output()
    assert outputs["traffic"] == {"iris-classifier-1": 100}
    assert "permissions_id" not in outputs  # null: `terraform output` leaves it out
    assert not tf.plan().summary.has_changes


@pytest.mark.parametrize(
    ("module_args", "message"),
    [
        pytest.param(
            TWO_ENTITIES,
            "traffic is required when served_entities lists several entities",
            id="traffic missing with two entities",
        ),
        pytest.param(
            f"{TWO_ENTITIES}\n  traffic = {{ current = 90, candidate = 5 }}",
            "traffic percentages must sum to 100; they sum to 95.",
            id="percentages not summing to 100",
        ),
        pytest.param(
            f"{TWO_ENTITIES}\n  traffic = {{ current = 90, canddiate = 10 }}",
            "traffic keys must be names of served_entities (current, candidate); got canddiate, current.",
            id="a route to an unknown entity",
        ),
        pytest.param(
            '  served_entities = [{ model = "iris-classifier", version = "1" }]\n'
            '  access_control  = [{ user_name = "alice", group_name = "users", permission_level = "CAN_QUERY" }]',
            "Each access_control entry names exactly one of user_name, group_name, service_principal_name.",
            id="a grant naming two principals",
        ),
    ],
)
def test_invalid_inputs_fail_at_plan_with_the_modules_message(
    terraform: Terraform, server: AppServer, module_args: str, message: str
) -> None:
    backend, url = server, server.url
    write_root(terraform, url, module_args)
    assert message in failed_plan(terraform).error_text()
    assert backend.serving_endpoints() == {}
