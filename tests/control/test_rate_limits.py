"""Rate limits of serving endpoints: parsing, which limits apply to whom, and the buckets over time."""

from __future__ import annotations

import pytest

from rtserve.server.control.rate_limits import (
    RateLimit,
    RateLimited,
    RateLimiter,
    limits_for,
    parse_ai_gateway,
    parse_rate_limits,
)
from rtserve.server.errors import ApiError

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def admitted(limiter: RateLimiter, limits: tuple[RateLimit, ...], caller: str, count: int) -> int:
    passed = 0
    for _ in range(count):
        try:
            limiter.admit("ep", limits, caller)
            passed += 1
        except RateLimited:
            pass
    return passed


def test_a_limit_lets_a_burst_of_its_calls_through_then_refills_at_its_rate():
    clock = Clock()
    limiter = RateLimiter(clock)
    limits = (RateLimit(calls=60),)

    assert admitted(limiter, limits, "a", 100) == 60
    clock.now += 1  # 60 calls per minute: one more per second
    assert admitted(limiter, limits, "a", 5) == 1
    clock.now += 3600  # never more than a full bucket
    assert admitted(limiter, limits, "a", 100) == 60


def test_the_refusal_is_a_429_saying_when_to_retry():
    clock = Clock()
    limiter = RateLimiter(clock)
    limits = (RateLimit(calls=2),)
    admitted(limiter, limits, "a", 2)

    with pytest.raises(RateLimited) as refused:
        limiter.admit("ep", limits, "a")

    assert refused.value.status == 429 and refused.value.error_code == "REQUEST_LIMIT_EXCEEDED"
    assert refused.value.headers == {"Retry-After": "30"}  # 2 calls per minute: one every 30 s
    assert "2 calls per minute for the endpoint" in refused.value.message


def test_a_per_token_limit_counts_each_token_on_its_own_and_the_endpoint_limit_counts_everyone():
    limiter = RateLimiter(Clock())
    limits = (RateLimit(calls=3, key="user"), RateLimit(calls=5))

    assert admitted(limiter, limits, "a", 10) == 3
    assert admitted(limiter, limits, "b", 10) == 2  # the endpoint's 5 are used up


def test_a_limit_naming_a_token_replaces_the_generic_per_token_one_for_it():
    limits = (RateLimit(calls=2, key="user"), RateLimit(calls=50, key="service_principal", principal="batch-job"))

    assert limits_for(limits, "batch-job") == [limits[1]]
    assert limits_for(limits, "alice") == [limits[0]]
    limiter = RateLimiter(Clock())
    assert admitted(limiter, limits, "batch-job", 100) == 50
    assert admitted(limiter, limits, "alice", 100) == 2


def test_a_refused_request_uses_up_nothing():
    limiter = RateLimiter(Clock())
    limits = (RateLimit(calls=10, key="user"), RateLimit(calls=1))
    admitted(limiter, limits, "a", 1)

    assert admitted(limiter, limits, "a", 5) == 0
    limiter.forget("ep")  # new limits start with full buckets
    assert admitted(limiter, (RateLimit(calls=10, key="user"),), "a", 20) == 10


def test_zero_calls_refuses_every_request():
    assert admitted(RateLimiter(Clock()), (RateLimit(calls=0),), "a", 3) == 0


def test_limits_are_parsed_in_databricks_forms():
    assert parse_rate_limits([{"calls": 10, "renewal_period": "minute"}]) == (RateLimit(10),)
    assert parse_ai_gateway(
        {
            "rate_limits": [{"calls": 5, "key": "user", "principal": "ci", "renewal_period": "minute"}],
            "usage_tracking_config": {"enabled": False},
        }
    ) == (RateLimit(5, "user", "minute", "ci"),)
    assert parse_ai_gateway({}) == () and parse_rate_limits(None) == ()


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ({"calls": 1}, "must be a list"),
        ([5], "must be an object"),
        ([{"renewal_period": "minute"}], "'rate_limits[0].calls'"),
        ([{"calls": -1, "renewal_period": "minute"}], "0 or more"),
        ([{"calls": True, "renewal_period": "minute"}], "whole number"),
        ([{"calls": 1, "renewal_period": "hour"}], "must be 'minute'"),
        ([{"calls": 1, "key": "ip", "renewal_period": "minute"}], "endpoint, user, service_principal"),
        ([{"calls": 1, "key": "user_group", "renewal_period": "minute"}], "no user groups"),
        ([{"tokens": 100, "renewal_period": "minute"}], "LLM"),
        ([{"calls": 1, "principal": "ci", "renewal_period": "minute"}], "must be 'user' or 'service_principal'"),
        (
            [{"calls": 1, "renewal_period": "minute"}, {"calls": 2, "key": "endpoint", "renewal_period": "minute"}],
            "two limits for the same callers",
        ),
    ],
)
def test_a_bad_limit_is_refused_saying_what_is_wrong(value: object, says: str):
    with pytest.raises(ApiError) as raised:
        parse_rate_limits(value)

    assert raised.value.status == 400 and says in raised.value.message


def test_the_ai_gateways_other_settings_are_refused_by_name():
    with pytest.raises(ApiError) as raised:
        parse_ai_gateway({"guardrails": {"input": {"pii": {"behavior": "BLOCK"}}}, "rate_limits": []})

    assert "remove guardrails" in raised.value.message
