"""The slot group of a replica start: one per version and config, so a rollout's new replicas start beside the old."""

from __future__ import annotations

import pytest

from rtserve.server.control.controller import slot_group
from rtserve.server.control.placement import Placement
from rtserve.server.control.reconciler import StartReplica
from rtserve.server.control.workloads import ReplicaSettings

pytestmark = pytest.mark.unit


def start(**changes: object) -> StartReplica:
    return StartReplica(**{"model_name": "iris", "version": "1", "model_uri": "/models/1", **changes})


def test_starts_of_one_version_and_config_share_a_group_whatever_the_reason_or_slot_count():
    group = slot_group(start())
    assert group.startswith("iris/1/")
    assert slot_group(start(reason="scaling up", slots=3, model_uri="/elsewhere")) == group


@pytest.mark.parametrize(
    "change",
    [
        {"settings": ReplicaSettings(batching=(8, 2.0))},
        {"settings": ReplicaSettings(environment_vars=(("MODE", "fast"),))},
        {"settings": ReplicaSettings(placement=Placement(node_labels=(("zone", "b"),)))},
        {"version": "2"},
    ],
)
def test_another_config_or_version_has_slots_of_its_own(change: dict):
    assert slot_group(start(**change)) != slot_group(start())
