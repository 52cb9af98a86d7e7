"""Provider unit tests: real resource classes over the real app (fake engine), reached in process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rtserve.provider.client import RtserveClient
from rtserve.provider.plugin import RtserveProvider
from rtserve.provider.waiter import Waiter
from tests.fakes.app import AppServer, running_app
from tests.provider.unit.helpers import HOST, FakeClock


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AppServer]:
    """The real app, its registry holding `iris` with versions 1 to 3 (all in stage None)."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with running_app(tmp_path / "app", {"iris": 3}) as app:
        yield app


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def provider(server: AppServer, clock: FakeClock) -> RtserveProvider:
    configured = RtserveProvider(
        environ={}, waiter=Waiter(interval=0.5, backoff=1.0, settle=2, clock=clock, sleep=clock.sleep)
    )
    configured.client = RtserveClient(HOST, server.token, transport=server.transport(), sleep=clock.sleep)
    return configured
