"""The scoring path: resolve a URL to a served version and forward the request to a replica.

Requests that find no READY replica wait (they are queued, not failed) while the version starts,
up to the request timeout. A replica that dies mid-request is retried once on another replica:
scoring is a pure function of the input, so a retry cannot apply anything twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from backend.control.controller import Controller
from backend.control.reconciler import VersionState
from backend.engines.base import Engine, InvocationResult, NoReadyReplica
from backend.errors import ApiError, not_found

if TYPE_CHECKING:
    from backend.services import Services


def resolve(controller: Controller, model: str, target: str) -> str:
    if model not in controller.enabled:
        raise not_found(f"Serving is not enabled for registered model '{model}'.")
    version = controller.resolve(model, target)
    if version is None:
        available = sorted(controller.routes.get(model, {})) + sorted(
            v for (name, v) in controller.views if name == model
        )
        hint = f" Available: {', '.join(available)}." if available else " Nothing is served yet."
        raise not_found(f"'{target}' is not a served stage, alias or version of '{model}'.{hint}")
    return version


@dataclass(frozen=True)
class Scored:
    version: str
    result: InvocationResult
    queue_ms: float  # time the request waited for a replica (cold start, all replicas busy starting)


async def score(
    controller: Controller,
    engine: Engine,
    model: str,
    target: str,
    body: bytes,
    content_type: str,
    timeout: float,
    max_queued: int,
) -> Scored:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    if not controller.synced.is_set():  # just restarted: wait for the registry rather than answer 404
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(controller.synced.wait(), timeout)
    while True:
        version = resolve(controller, model, target)
        with controller.traffic.request(model, version) as stats:
            view = controller.view(model, version)
            per_replica = controller.tuning.replica_concurrency
            limit = max(view.target_replicas if view else 1, 1) * per_replica + max_queued
            if stats.in_flight > limit:
                raise ApiError(
                    "REQUEST_LIMIT_EXCEEDED",
                    f"Version {version} of '{model}' has {stats.in_flight - 1} requests queued or in flight, "
                    f"its limit; retry with backoff or raise the workload size.",
                    429,
                )
            scored = await _score_version(controller, engine, model, version, body, content_type, deadline, timeout)
        if scored is not None:
            return scored
        # The version stopped serving while the request waited (its stage moved on): resolve again.


async def _score_version(
    controller: Controller,
    engine: Engine,
    model: str,
    version: str,
    body: bytes,
    content_type: str,
    deadline: float,
    timeout: float,
) -> Scored | None:
    loop = asyncio.get_running_loop()
    arrived = loop.time()
    connection_failures = 0
    poll = 0.005
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise ApiError(
                "DEADLINE_EXCEEDED", f"No replica of version {version} of '{model}' answered within {timeout:g} s."
            )
        dispatched = loop.time()
        try:
            result = await engine.invoke(model, version, body, content_type, remaining)
            return Scored(version, result, (dispatched - arrived) * 1000)
        except NoReadyReplica:
            view = controller.view(model, version)
            if view is None:
                return None
            if view.state == VersionState.FAILED:
                raise ApiError(
                    "TEMPORARILY_UNAVAILABLE", f"Version {version} of '{model}' is not serving: {view.message}"
                ) from None
            # A cold start or a replacement is under way: ask for it now and poll briefly, since a
            # forked replica is ready in tens of milliseconds, far sooner than the next regular tick.
            controller.nudge()
            await asyncio.sleep(min(poll, remaining))
            poll = min(poll * 2, 0.05)
        except TimeoutError:
            raise ApiError(
                "DEADLINE_EXCEEDED", f"The model did not answer within the request timeout of {timeout:g} s."
            ) from None
        except ConnectionError as exc:
            connection_failures += 1
            if connection_failures > 1:
                raise ApiError(
                    "TEMPORARILY_UNAVAILABLE", f"The replica serving the request stopped unexpectedly ({exc}); retry."
                ) from None


async def score_and_record(services: Services, model: str, target: str, body: bytes, content_type: str) -> Scored:
    """Score as the invocation URLs do, counting the request in the metrics whatever its outcome."""
    controller = services.controller
    started = time.perf_counter()
    try:
        scored = await score(
            controller,
            services.engine,
            model,
            target,
            body,
            content_type,
            services.settings.request_timeout_seconds,
            services.settings.max_queued_requests,
        )
    except ApiError as exc:
        version = controller.resolve(model, target) if model in controller.enabled else None
        if version is not None:
            services.metrics.observe(model, version, exc.status, (time.perf_counter() - started) * 1000, None)
        raise
    latency_ms = (time.perf_counter() - started) * 1000
    services.metrics.observe(model, scored.version, scored.result.status, latency_ms, scored.queue_ms)
    return scored
