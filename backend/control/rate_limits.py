"""Rate limits of named serving endpoints: Databricks' `rate_limits` (legacy) and `ai_gateway.rate_limits`.

A limit allows `calls` requests per minute, to the whole endpoint (`key: endpoint`) or to each token
(`key: user` or `service_principal`; rtserve's principals are its tokens, by name). A per-token limit
may name one `principal`; for that token it replaces the limit of the same kind without a principal.
The endpoint's limit and the caller's limit both apply.

Each limit is a token bucket holding up to `calls` requests and refilled at `calls` per minute: a
burst of `calls` passes, then requests pass at the steady rate. The buckets live in the gateway's
memory (`MemoryBuckets`: a backend restart refills them), or, when several instances share a
PostgreSQL database, in its `rate_buckets` table (`store/rate_buckets.py`), where each request's
buckets are read and changed under row locks: a limit of N per minute is N across all instances.
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from rtserve import spec
from rtserve.server.errors import ApiError, invalid
from rtserve.server.validate import asks_for, checked, known_fields
from rtserve.spec import CALLER_KEYS, ENDPOINT_KEY, MAX_CALLS, RENEWAL_PERIODS

# Fields of Databricks' AI gateway that belong to LLM serving.
UNSUPPORTED_GATEWAY_FIELDS = ("guardrails", "fallback_config")
# Read with the endpoint's other table settings (control/inference_tables.py).
TABLE_GATEWAY_FIELDS = ("inference_table_config", "usage_tracking_config")


@dataclass(frozen=True)
class RateLimit:
    calls: int
    key: str = ENDPOINT_KEY
    renewal_period: str = "minute"
    principal: str | None = None

    @property
    def period_seconds(self) -> float:
        return RENEWAL_PERIODS[self.renewal_period]

    def to_stored(self) -> dict[str, Any]:
        stored: dict[str, Any] = {"calls": self.calls, "key": self.key, "renewal_period": self.renewal_period}
        return stored | ({"principal": self.principal} if self.principal else {})

    @classmethod
    def from_stored(cls, stored: dict[str, Any]) -> RateLimit:
        # Clamped: a row written before limits were checked must not break scoring on that endpoint.
        calls = min(max(int(stored["calls"]), 0), MAX_CALLS)
        return cls(calls, stored["key"], stored["renewal_period"], stored.get("principal"))

    def describe(self) -> str:
        who = {ENDPOINT_KEY: "the endpoint"}.get(
            self.key, f"token '{self.principal}'" if self.principal else "each token"
        )
        calls = "1 call" if self.calls == 1 else f"{self.calls} calls"
        return f"{calls} per {self.renewal_period} for {who}"


def parse_rate_limits(value: Any, where: str = "rate_limits") -> tuple[RateLimit, ...]:
    """A list of rate limits from a request, checked in full; at most one per key and principal."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise invalid(f"'{where}' must be a list of {{calls, key, renewal_period}}; got {type(value).__name__}.")
    limits = tuple(_parse_limit(item, f"{where}[{index}]") for index, item in enumerate(value))
    seen: set[tuple[str, str | None]] = set()
    for limit in limits:
        identity = spec.rate_limit_callers(limit.key, limit.principal)
        if identity in seen:
            raise invalid(f"'{where}' has two limits for the same callers ({limit.describe()}); keep one.")
        seen.add(identity)
    return limits


def _parse_limit(item: Any, where: str) -> RateLimit:
    if not isinstance(item, dict):
        raise invalid(f"'{where}' must be an object {{calls, key, renewal_period}}; got {type(item).__name__}.")
    if item.get("tokens") is not None:
        raise invalid(f"'{where}.tokens': token-based limits are for LLM endpoints; limit 'calls' instead.")
    known_fields(item, where, ("calls", "key", "renewal_period", "principal"))
    calls = checked(spec.check_calls, item.get("calls"), f"{where}.calls")
    key = checked(spec.check_rate_limit_key, item.get("key"), f"{where}.key")
    period = checked(spec.check_renewal_period, item.get("renewal_period"), f"{where}.renewal_period")
    principal = checked(spec.check_principal, item.get("principal"), key, f"{where}.principal")
    return RateLimit(calls, key, period, principal)


def parse_ai_gateway(value: Any) -> tuple[RateLimit, ...]:
    """The rate limits of an `ai_gateway` object; its LLM settings are refused (its tables are read elsewhere)."""
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise invalid(f"'ai_gateway' must be an object with 'rate_limits'; got {type(value).__name__}.")
    unsupported = [name for name in UNSUPPORTED_GATEWAY_FIELDS if asks_for(value.get(name))]
    if unsupported:
        raise invalid(
            f"rtserve's AI gateway supports rate_limits, inference_table_config and usage_tracking_config; remove "
            f"{', '.join(unsupported)} (guardrails and fallbacks are for LLM serving)."
        )
    known_fields(value, "ai_gateway", ("rate_limits", *TABLE_GATEWAY_FIELDS, *UNSUPPORTED_GATEWAY_FIELDS))
    return parse_rate_limits(value.get("rate_limits"), "ai_gateway.rate_limits")


def limits_for(limits: Iterable[RateLimit], caller: str) -> list[RateLimit]:
    """The limits a caller's request is counted against: the endpoint's, and its own or the generic per-token one."""
    limits = list(limits)
    applying = [limit for limit in limits if limit.key == ENDPOINT_KEY]
    own = [limit for limit in limits if limit.key in CALLER_KEYS and limit.principal == caller]
    generic = [limit for limit in limits if limit.key in CALLER_KEYS and limit.principal is None]
    return applying + (own or generic)


Bucket = tuple[float, float]  # (requests left, when last refilled)


class BucketStore(Protocol):
    """Where the buckets live. `blocking`: its calls wait on I/O (run them off the event loop)."""

    blocking: bool

    def locked(self, endpoint: str, buckets: Sequence[str]) -> contextlib.AbstractContextManager[dict[str, Bucket]]:
        """The named buckets of an endpoint that exist, held until the block ends; what the block
        sets in the mapping is kept if it ends normally (nothing is if it raises)."""

    def forget(self, endpoint: str) -> None:
        """Drop every bucket of an endpoint."""


class MemoryBuckets:
    """This process's buckets (one instance answers every request)."""

    blocking = False

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, str], Bucket] = {}

    @contextmanager
    def locked(self, endpoint: str, buckets: Sequence[str]) -> Iterator[dict[str, Bucket]]:
        with self._lock:
            held = {name: self._buckets[(endpoint, name)] for name in buckets if (endpoint, name) in self._buckets}
            yield held
            self._buckets.update({(endpoint, name): bucket for name, bucket in held.items()})

    def forget(self, endpoint: str) -> None:
        with self._lock:
            self._buckets = {key: value for key, value in self._buckets.items() if key[0] != endpoint}


class RateLimiter:
    """Token buckets per endpoint, limit and caller, in `store`. Thread-safe; time comes from `clock` (seconds,
    the wall clock when instances on several machines share the store)."""

    def __init__(self, clock: Callable[[], float], store: BucketStore | None = None) -> None:
        self._clock = clock
        self.store: BucketStore = store or MemoryBuckets()

    def admit(self, endpoint: str, limits: Sequence[RateLimit], caller: str) -> None:
        """Count one request, or refuse it (429) if any of its limits has no request left."""
        applying = limits_for(limits, caller)
        if not applying:
            return
        names = [json.dumps([limit.to_stored(), None if limit.key == ENDPOINT_KEY else caller]) for limit in applying]
        now = self._clock()
        with self.store.locked(endpoint, names) as buckets:
            levels = [_refilled(buckets.get(name), limit, now) for name, limit in zip(names, applying, strict=True)]
            for limit, level in zip(applying, levels, strict=True):
                if level < 1:
                    wait = (1 - level) * limit.period_seconds / limit.calls if limit.calls else limit.period_seconds
                    raise rate_limited(endpoint, limit, wait)
            for name, level in zip(names, levels, strict=True):
                buckets[name] = (level - 1, now)

    def forget(self, endpoint: str) -> None:
        """Drop an endpoint's buckets (it was deleted or its limits changed)."""
        self.store.forget(endpoint)


def _refilled(bucket: Bucket | None, limit: RateLimit, now: float) -> float:
    left, since = bucket or (float(limit.calls), now)
    return min(float(limit.calls), left + max(0.0, now - since) * limit.calls / limit.period_seconds)


class RateLimited(ApiError):
    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__("REQUEST_LIMIT_EXCEEDED", message, 429)
        self.headers = {"Retry-After": str(max(1, math.ceil(retry_after)))}


def rate_limited(endpoint: str, limit: RateLimit, wait: float) -> RateLimited:
    return RateLimited(
        f"Serving endpoint '{endpoint}' allows {limit.describe()}; this request is over it. "
        f"Retry in {wait:.1f} s, or ask its manager to raise the limit (PUT /api/2.0/serving-endpoints/"
        f"{endpoint}/ai-gateway).",
        wait,
    )
