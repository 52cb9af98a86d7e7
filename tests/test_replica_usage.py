"""The replicas' CPU and memory for the usage metrics: read from the process, or as the replica reported it."""

from __future__ import annotations

import os

import pytest

from rtserve.server.engines.base import ReplicaObservation, ReplicaState
from rtserve.server.replica_usage import ReplicaUsage

pytestmark = pytest.mark.unit


def replica(replica_id: str, version: str, **fields: object) -> ReplicaObservation:
    base = {"pid": None, "state": ReplicaState.READY, "in_flight": 0}
    values = {**base, **fields}
    return ReplicaObservation(replica_id, "iris", version, values.pop("state"), "", 0.0, **values)  # type: ignore[arg-type]


def test_a_reported_usage_counts_as_reported_and_a_local_pid_is_read():
    usage = ReplicaUsage()
    # A Ray replica on another machine: its pid means nothing here (here it is this test's own process).
    remote = replica("iris-1-a", "1", pid=os.getpid(), usage=(40.0, 2.5))
    also_remote = replica("iris-1-b", "1", usage=(20.0, 1.5))
    local = replica("iris-2-a", "2", pid=os.getpid())
    first = usage.read([remote, also_remote, local])
    assert (first[("iris", "1")].cpu_percent, first[("iris", "1")].memory_percent) == (30.0, 2.0)
    assert first[("iris", "2")].cpu_percent == 0.0  # the first read of a process is its baseline
    assert first[("iris", "2")].memory_percent > 0


def test_replicas_that_are_not_live_or_unknown_count_for_nothing():
    usage = ReplicaUsage()
    gone = replica("iris-1-a", "1", state=ReplicaState.CRASHED, usage=(90.0, 9.0))
    unknown = replica("iris-1-b", "1")  # no pid, nothing reported
    assert usage.read([gone, unknown]) == {}
