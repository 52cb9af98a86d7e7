"""Durations and the poll loop, on a fake clock."""

from __future__ import annotations

import pytest

from rtserve.provider.waiter import Progress, Waiter, WaitFailed, WaitTimeout, parse_duration
from tests.provider.unit.helpers import FakeClock

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "seconds"), [("20m", 1200), ("1h30m", 5400), ("90s", 90), ("1.5h", 5400), ("500ms", 0.5)]
)
def test_durations_are_read_like_terraform_timeouts(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "20", "soon", "5 minutes", "1d"])
def test_anything_else_is_not_a_duration(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


def test_the_waiter_needs_done_twice_in_a_row() -> None:
    clock = FakeClock()
    answers = iter([Progress(done=True), Progress(), Progress(done=True), Progress(done=True, message="ok")])
    result = Waiter(interval=1, backoff=1.0, settle=2, clock=clock, sleep=clock.sleep).wait(lambda: next(answers), 60)
    assert result.message == "ok"
    assert clock.sleeps == [1, 1, 1]


def test_the_waiter_stops_at_the_first_failure() -> None:
    clock = FakeClock()
    with pytest.raises(WaitFailed, match="broken"):
        Waiter(clock=clock, sleep=clock.sleep).wait(lambda: Progress(failure="broken"), 60)


def test_the_waiter_gives_up_after_the_timeout_with_the_last_message() -> None:
    clock = FakeClock()
    with pytest.raises(WaitTimeout) as caught:
        Waiter(interval=1, backoff=1.0, clock=clock, sleep=clock.sleep).wait(
            lambda: Progress(message="still pending"), 5
        )
    assert caught.value.last == "still pending"
    assert clock.now == 5


def test_the_interval_grows_up_to_its_maximum() -> None:
    clock = FakeClock()
    with pytest.raises(WaitTimeout):
        Waiter(interval=0.2, backoff=2, max_interval=1, clock=clock, sleep=clock.sleep).wait(lambda: Progress(), 10)
    assert clock.sleeps[:5] == [0.2, 0.4, 0.8, 1, 1]
