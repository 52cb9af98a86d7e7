"""modules/model-serving-endpoint: validated by the embedded Terraform, applied from plain HCL and from
CDKTF (TerraformHclModule) against the real app (fake engine)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from rtserve.provider.install import Installation
from rtserve.provider.terraform import Terraform
from tests.fakes.app import AppServer
from tests.provider.terraform_helpers import failed_plan, served_app, terraform_in, write_main_tf

pytestmark = pytest.mark.e2e
MODULE = Path(__file__).resolve().parents[2] / "modules" / "model-serving-endpoint"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[AppServer]:
    with served_app(tmp_path, "iris-classifier", versions=2) as app:
        yield app


def write_root(tf: Terraform, host: str, module_args: str) -> None:
    """A root module calling the module with `module_args`."""
    source = os.path.relpath(MODULE, tf.workdir)
    body = f"""module "iris" {{
  source     = "{source}"
  model_name = "iris-classifier"
{module_args}
}}
output "production_url" {{ value = module.iris.production_url }}
output "promoted_versions" {{ value = module.iris.promoted_versions }}
"""
    write_main_tf(tf, host, body)


def test_the_module_is_valid_on_its_own(tmp_path: Path, installation: Installation) -> None:
    for name in ("versions.tf", "variables.tf", "main.tf", "outputs.tf"):
        (tmp_path / name).write_text((MODULE / name).read_text())
    tf = Terraform(tmp_path, installation)
    assert tf.init().ok
    result = tf.validate()
    assert result.ok and result.errors == [], result.error_text()


def test_the_module_applies_with_an_empty_second_plan(terraform: Terraform, server: AppServer) -> None:
    tf = terraform
    backend, url = server, server.url
    write_root(tf, url, '  production = { workload_size = "Medium" }\n  promotions = { Production = "1" }')
    tf.init()
    assert str(tf.apply().summary) == "2 to add, 0 to change, 0 to destroy"
    assert backend.endpoints()["iris-classifier"]["Production"]["workload_size_id"] == "Medium"
    assert tf.output() == {
        "production_url": f"{url}/model-endpoint/iris-classifier/Production/invocations",
        "promoted_versions": {"Production": "1"},
    }
    assert not tf.plan().summary.has_changes


def test_an_invalid_promotion_fails_at_plan_with_the_modules_message(terraform: Terraform, server: AppServer) -> None:
    url = server.url
    write_root(terraform, url, '  promotions = { prod = "1" }')
    assert 'promotions keys must be "Staging" or "Production".' in failed_plan(terraform).error_text()


def test_the_module_is_usable_from_cdktf(tmp_path: Path, installation: Installation, server: AppServer) -> None:
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    import cdktf

    from rtserve.cdk import RtserveStack

    backend, url = server, server.url
    app = cdktf.App(outdir=str(tmp_path / "out"))
    stack = RtserveStack(app, "modules", host=url, state_path=str(tmp_path / "state.tfstate"))
    module = cdktf.TerraformHclModule(
        stack,
        "iris",
        source=str(MODULE),
        variables={
            "model_name": "iris-classifier",
            "staging": {"workload_size": "Small"},
            "promotions": {"Staging": "2"},
        },
    )
    cdktf.TerraformOutput(stack, "staging_url", value=module.get_string("staging_url"))
    app.synth()

    workdir = tmp_path / "out" / "stacks" / "modules"
    tf = terraform_in(workdir, installation, backend.token, check=True)
    tf.init()
    tf.apply()
    assert backend.stages("iris-classifier")["2"] == "Staging"
    assert tf.output()["staging_url"] == f"{url}/model-endpoint/iris-classifier/Staging/invocations"
    assert not tf.plan().summary.has_changes
