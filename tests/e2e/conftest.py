"""End-to-end fixtures: show the backend's log when a test fails (the Terraform error alone rarely says why
a version never became ready)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


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
