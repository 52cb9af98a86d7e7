"""The autoscaling policy: how many replicas a version should run. A pure function of its context.

Replicas follow the observed concurrency (requests in flight or queued at the gateway), inside the
workload size's range. Decisions to scale up or down must persist for a delay before they apply
(hysteresis), and an opposite decision resets the delay, so a noisy load does not flap. Scaling to
zero and waking from zero are separate branches: going to zero needs an idle period with no
request at all; leaving zero happens at once when a request waits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class ScalingContext:
    now: float
    current: int  # replicas running or starting
    in_flight: int  # requests being served or queued for this version right now
    low: int  # lower bound when not idle (>= 1)
    high: int
    per_replica: int  # concurrent requests one replica is sized for
    scale_to_zero: bool
    last_request_at: float  # when the version last received a request (its start time if never)
    idle_seconds: float
    upscale_delay: float = 1.0
    downscale_delay: float = 30.0


@dataclass(frozen=True)
class ScalingState:
    """A pending decision: `proposal` replicas, first proposed at `since`."""

    proposal: int | None = None
    since: float = 0.0


def _bounded(ctx: ScalingContext) -> int:
    wanted = math.ceil(ctx.in_flight / ctx.per_replica) if ctx.in_flight else ctx.low
    return max(ctx.low, min(ctx.high, wanted))


def decide(ctx: ScalingContext, state: ScalingState) -> tuple[int, ScalingState]:
    """The replica count to run now, and the state to pass to the next call."""
    # Waking from zero: a waiting request must not wait for a delay as well as a cold start.
    if ctx.current == 0 and ctx.in_flight > 0:
        return _bounded(ctx), ScalingState()
    # Scaling to zero: only after a full idle period with nothing in flight.
    idle = ctx.in_flight == 0 and ctx.now - ctx.last_request_at >= ctx.idle_seconds
    if ctx.scale_to_zero and idle:
        return 0, ScalingState()
    if ctx.current == 0 and ctx.scale_to_zero:
        return 0, ScalingState()  # stay at zero until a request arrives

    if ctx.current < ctx.low or ctx.current > ctx.high:
        # Outside the range (the compute config changed): step into it at once, then scale as usual.
        return max(ctx.low, min(ctx.high, ctx.current)), ScalingState()
    target = _bounded(ctx)
    if target == ctx.current:
        return ctx.current, ScalingState()
    if state.proposal is None or (state.proposal > ctx.current) != (target > ctx.current):
        # A new decision, or the opposite of the pending one: start the delay afresh.
        state = ScalingState(target, ctx.now)
    delay = ctx.upscale_delay if target > ctx.current else ctx.downscale_delay
    if ctx.now - state.since >= delay:
        return target, ScalingState()
    return ctx.current, ScalingState(target, state.since)
