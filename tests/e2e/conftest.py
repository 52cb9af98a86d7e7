"""End-to-end fixtures: Terraform working directories against the live backend, and the backend's log
shown when a test fails (the Terraform error alone rarely says why a version never became ready)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rtserve.provider.install import Installation
from rtserve.provider.terraform import Terraform
from rtserve.server.process import BackendProcess
from tests.conftest import ADMIN_TOKEN
from tests.provider.terraform_helpers import installation, terraform_in

__all__ = ["installation", "terraform"]


@pytest.fixture
def terraform(tmp_path: Path, backend: BackendProcess, installation: Installation) -> Iterator[Terraform]:
    """Terraform in a fresh directory, applying as the admin; whatever a test leaves applied is destroyed."""
    tf = terraform_in(tmp_path, installation, ADMIN_TOKEN, check=True)
    yield tf
    if (tmp_path / "terraform.tfstate").exists():
        tf.check = False
        tf.destroy()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.stash[_CALL_FAILED] = report.failed


_CALL_FAILED = pytest.StashKey[bool]()


@pytest.fixture(autouse=True)
def backend_log_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if request.node.stash.get(_CALL_FAILED, False) and "backend" in request.fixturenames:
        backend = request.getfixturevalue("backend")
        print(f"\n--- last lines of the backend log ({backend.log_path}) ---\n{backend.tail(120)}")
