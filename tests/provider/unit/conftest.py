"""Provider unit tests: real resource classes over a fake backend mounted as an httpx.MockTransport."""

from __future__ import annotations

import pytest
from rtserve.provider.client import RtserveClient
from rtserve.provider.plugin import RtserveProvider
from rtserve.provider.waiter import Waiter

from tests.provider.fake_backend import FakeBackend
from tests.provider.unit.helpers import HOST, FakeClock


@pytest.fixture
def fake() -> FakeBackend:
    backend = FakeBackend()
    backend.add_model("iris", versions=3)
    return backend


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def provider(fake: FakeBackend, clock: FakeClock) -> RtserveProvider:
    configured = RtserveProvider(
        environ={}, waiter=Waiter(interval=0.5, backoff=1.0, settle=2, clock=clock, sleep=clock.sleep)
    )
    configured.client = RtserveClient(HOST, fake.token, transport=fake.transport(), sleep=clock.sleep)
    return configured
