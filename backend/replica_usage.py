"""CPU and memory use of the replica processes, for the cpu/mem usage metrics.

Read with psutil when Prometheus scrapes. CPU is the share of one core a replica used since the
previous scrape (its first scrape sets the baseline and counts 0); memory is its resident set as a
share of the machine's memory. A replica that reports its own use (a Ray actor, whose node may be
another machine, measures itself at every health check) counts with what it reported last: CPU
since its previous health check. Each metric is the average over a version's live replicas, as in
Databricks' export.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import psutil

from rtserve.server.engines.base import ReplicaObservation, ReplicaState

_LIVE = (ReplicaState.STARTING, ReplicaState.READY, ReplicaState.STOPPING)


@dataclass(frozen=True)
class VersionUsage:
    cpu_percent: float
    memory_percent: float


class ReplicaUsage:
    """Per-version averages of the replicas' CPU and memory use, between successive reads."""

    def __init__(self) -> None:
        # psutil measures CPU between two calls on the same Process object, so they are kept.
        self._processes: dict[tuple[str, int], psutil.Process] = {}
        self._total_memory = psutil.virtual_memory().total
        self._lock = threading.Lock()  # scrapes may overlap

    def read(self, replicas: Iterable[ReplicaObservation]) -> dict[tuple[str, str], VersionUsage]:
        with self._lock:
            return self._read(replicas)

    def _read(self, replicas: Iterable[ReplicaObservation]) -> dict[tuple[str, str], VersionUsage]:
        samples: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
        seen = set()
        for replica in replicas:
            if replica.state not in _LIVE:
                continue
            if replica.usage is not None:  # measured where it runs (a Ray node)
                samples[(replica.model_name, replica.version)].append(replica.usage)
                continue
            if replica.pid is None:
                continue
            key = (replica.replica_id, replica.pid)
            seen.add(key)
            try:
                process = self._processes.get(key)
                if process is None:
                    process = self._processes[key] = psutil.Process(replica.pid)
                    process.cpu_percent(None)  # the baseline
                with process.oneshot():
                    cpu = process.cpu_percent(None)
                    memory = process.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                self._processes.pop(key, None)
                continue
            samples[(replica.model_name, replica.version)].append((cpu, 100.0 * memory / self._total_memory))
        for key in set(self._processes) - seen:
            del self._processes[key]
        return {
            version: VersionUsage(
                cpu_percent=sum(cpu for cpu, _ in values) / len(values),
                memory_percent=sum(memory for _, memory in values) / len(values),
            )
            for version, values in samples.items()
        }
