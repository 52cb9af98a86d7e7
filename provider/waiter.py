"""Waiting for the backend to converge: Terraform-style durations and a poll loop with an injected clock."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def parse_duration(text: str) -> float:
    """Seconds in a Go duration string as Terraform's `timeouts` blocks use them: "20m", "1h30m", "90s"."""
    cleaned = text.strip()
    if not cleaned or _DURATION.sub("", cleaned):
        raise ValueError(f'{text!r} is not a duration; write e.g. "90s", "20m" or "1h30m"')
    return sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION.findall(cleaned))


@dataclass(frozen=True)
class Progress:
    """One look at the backend: done, failed (with the backend's message), or still converging."""

    done: bool = False
    failure: str | None = None
    message: str = ""


class WaitFailed(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class WaitTimeout(Exception):
    def __init__(self, timeout: float, last: str) -> None:
        super().__init__(f"not done after {timeout:g} s; last status: {last}")
        self.timeout = timeout
        self.last = last


@dataclass
class Waiter:
    """Polls `check` until it is done `settle` times in a row, it fails, or `timeout` seconds pass.

    `settle` guards against reading a status the backend has not updated yet right after a change
    (the reconciler picks up new desired state asynchronously). The interval starts short, so a
    fast backend costs little, and grows by `backoff` up to `max_interval`, so a twenty-minute wait
    does not poll four times a second.
    """

    interval: float = 0.2
    max_interval: float = 2.0
    backoff: float = 1.5
    settle: int = 2
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep

    def wait(self, check: Callable[[], Progress], timeout: float) -> Progress:
        deadline = self.clock() + timeout
        streak = 0
        interval = self.interval
        while True:
            progress = check()
            if progress.failure is not None:
                raise WaitFailed(progress.failure)
            streak = streak + 1 if progress.done else 0
            if streak >= self.settle:
                return progress
            now = self.clock()
            if now >= deadline:
                raise WaitTimeout(timeout, progress.message)
            self.sleep(min(interval, deadline - now))
            interval = min(interval * self.backoff, self.max_interval)
