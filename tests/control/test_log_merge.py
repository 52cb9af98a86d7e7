import pytest

from rtserve.server.control.logs import merge_replica_logs

pytestmark = pytest.mark.unit


def test_all_replicas_are_merged_in_time_order_and_tagged():
    merged = merge_replica_logs(
        {
            "a": "2026-11-22T04:00:00.100Z loading\n2026-11-22T04:00:02.000Z ready\n",
            "b": "2026-11-22T04:00:01.000Z loading\n  traceback line\n2026-11-22T04:00:03.000Z ready\n",
        }
    )
    assert merged.splitlines() == [
        "2026-11-22T04:00:00.100Z [a] loading",
        "2026-11-22T04:00:01.000Z [b] loading",
        "[b]   traceback line",
        "2026-11-22T04:00:02.000Z [a] ready",
        "2026-11-22T04:00:03.000Z [b] ready",
    ]


def test_no_replicas_no_lines():
    assert merge_replica_logs({}) == ""
