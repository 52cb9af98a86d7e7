"""The autoscaling policy, stepped tick by tick against a fake clock."""

from dataclasses import replace

import pytest

from rtserve.server.control.autoscaler import ScalingContext, ScalingState, decide

pytestmark = pytest.mark.unit

MEDIUM = ScalingContext(
    now=0.0,
    current=2,
    in_flight=0,
    low=2,
    high=4,
    per_replica=4,
    scale_to_zero=False,
    last_request_at=0.0,
    idle_seconds=1800,
    upscale_delay=1.0,
    downscale_delay=30.0,
)


def run(ticks: list[tuple[float, int]], ctx: ScalingContext = MEDIUM) -> list[int]:
    """Feed (now, in_flight) ticks; the count decided at one tick is `current` at the next."""
    state, current, counts = ScalingState(), ctx.current, []
    for now, in_flight in ticks:
        current, state = decide(replace(ctx, now=now, in_flight=in_flight, current=current), state)
        counts.append(current)
    return counts


def test_it_scales_up_after_the_load_persists_for_the_upscale_delay():
    assert run([(0, 16), (0.5, 16), (1.0, 16), (1.5, 16)]) == [2, 2, 4, 4]


def test_it_never_leaves_the_workload_range():
    assert run([(0, 500), (2, 500)]) == [2, 4]
    assert run([(0, 0), (100, 0)]) == [2, 2]


def test_a_short_burst_does_not_scale_up():
    assert run([(0, 16), (0.5, 0), (1.0, 16), (1.5, 16)]) == [2, 2, 2, 2]


def test_scaling_down_waits_for_the_downscale_delay():
    ctx = replace(MEDIUM, current=4)
    assert run([(0, 4), (10, 4), (29, 4), (30, 4)], ctx) == [4, 4, 4, 2]


def test_an_opposite_decision_resets_the_delay():
    ctx = replace(MEDIUM, current=3)
    # Down is proposed at 0, then load calls for up at 20, then down again at 25: down restarts at 25.
    counts = run([(0, 0), (20, 16), (25, 0), (50, 0), (55, 0)], ctx)
    assert counts == [3, 3, 3, 3, 2]


def test_it_scales_to_zero_only_after_the_idle_period():
    ctx = replace(MEDIUM, scale_to_zero=True, idle_seconds=60, last_request_at=0)
    assert run([(30, 0), (59, 0), (60, 0), (90, 0)], ctx) == [2, 2, 0, 0]


def test_a_request_at_zero_starts_a_replica_immediately():
    ctx = replace(MEDIUM, scale_to_zero=True, current=0, idle_seconds=60, low=1, last_request_at=0)
    assert run([(100, 0), (100.1, 1)], ctx) == [0, 1]


def test_without_scale_to_zero_idle_versions_keep_their_lower_bound():
    assert run([(0, 0), (10_000, 0)], replace(MEDIUM, idle_seconds=60)) == [2, 2]


def test_a_compute_change_that_moves_the_bounds_applies_at_once():
    assert run([(0, 0)], replace(MEDIUM, current=1)) == [2]
    assert run([(0, 0)], replace(MEDIUM, current=8)) == [4]
