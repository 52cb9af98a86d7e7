"""Requests in flight per served version, as the gateway sees them (queued ones included).

The autoscaler reads this; the gateway writes it. Both run on the event loop, so plain counters do.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class VersionTraffic:
    in_flight: int = 0
    last_request_at: float = 0.0


class Traffic:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._versions: dict[tuple[str, str], VersionTraffic] = {}

    @contextmanager
    def request(self, model: str, version: str) -> Iterator[VersionTraffic]:
        stats = self._versions.setdefault((model, version), VersionTraffic())
        stats.in_flight += 1
        stats.last_request_at = self._clock()
        try:
            yield stats
        finally:
            stats.in_flight -= 1
            stats.last_request_at = self._clock()

    def get(self, model: str, version: str) -> VersionTraffic:
        return self._versions.get((model, version), VersionTraffic())

    def snapshot(self) -> dict[tuple[str, str], VersionTraffic]:
        return {key: VersionTraffic(v.in_flight, v.last_request_at) for key, v in self._versions.items()}
