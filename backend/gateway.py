"""The scoring path: resolve a URL to a served version and forward the request to a replica.

Requests that find no READY replica wait (they are queued, not failed) while the version starts,
up to the request timeout. A request that never reached its replica (the connection was already
lost) is sent once to another replica; one the replica had when it died is answered 503 and not
retried, since it may be what killed the replica and would kill the next one too.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rtserve.server.control.controller import Controller
from rtserve.server.control.reconciler import VersionState
from rtserve.server.control.serving_config import ServedEntity
from rtserve.server.engines.base import Engine, InvocationResult, NoReadyReplica, ReplicaUnreachable
from rtserve.server.errors import ApiError, not_found

if TYPE_CHECKING:
    from rtserve.server.services import Services


def resolve(controller: Controller, model: str, target: str) -> str:
    if model not in controller.snapshot.enabled:
        raise not_found(f"Serving is not enabled for registered model '{model}'.")
    version = controller.snapshot.resolve(model, target)
    if version is None:
        available = sorted(controller.snapshot.routes.get(model, {})) + sorted(
            v for (name, v) in controller.snapshot.views if name == model
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
        scored = await _score_on(controller, engine, model, version, body, content_type, deadline, timeout, max_queued)
        if scored is not None:
            return scored
        # The version stopped serving while the request waited (its stage moved on): resolve again.


def resolve_served(controller: Controller, endpoint_name: str, served_model: str | None) -> ServedEntity:
    """The served entity a request to a named endpoint goes to: the one named, or one drawn by traffic."""
    endpoint = controller.snapshot.serving.get(endpoint_name)
    if endpoint is None:
        raise not_found(f"Serving endpoint '{endpoint_name}' does not exist.")
    if served_model is not None:
        entity = endpoint.served_entity(served_model)
        if entity is None:
            names = sorted({e.name for e in endpoint.entities()})
            raise not_found(
                f"Serving endpoint '{endpoint_name}' has no served model '{served_model}'. Served: {', '.join(names)}."
            )
        return entity
    config = endpoint.serving
    assert config is not None  # an endpoint is stored with a config or a pending config
    return config.pick()


async def score_served(
    services: Services, endpoint_name: str, served_model: str | None, body: bytes, content_type: str
) -> tuple[ServedEntity, Scored]:
    """Score on a named endpoint (traffic split) or one of its served models, recording the metrics."""
    controller, settings = services.controller, services.settings
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settings.request_timeout_seconds
    started = time.perf_counter()
    if not controller.synced.is_set():  # just restarted: wait for the store rather than answer 404
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(controller.synced.wait(), settings.request_timeout_seconds)
    while True:
        entity = resolve_served(controller, endpoint_name, served_model)
        model, version = entity.key
        try:
            scored = await _score_on(
                controller,
                services.engine,
                model,
                version,
                body,
                content_type,
                deadline,
                settings.request_timeout_seconds,
                settings.max_queued_requests,
            )
        except ApiError as exc:
            services.metrics.observe(model, version, exc.status, (time.perf_counter() - started) * 1000, None)
            raise
        if scored is not None:
            latency_ms = (time.perf_counter() - started) * 1000
            services.metrics.observe(model, version, scored.result.status, latency_ms, scored.queue_ms)
            return entity, scored
        # The version is not (or no longer) planned: a config just created, or one replaced while the
        # request waited. Let the controller catch up, then resolve again.
        if loop.time() >= deadline:
            raise ApiError(
                "DEADLINE_EXCEEDED",
                f"Serving endpoint '{endpoint_name}' did not answer within {settings.request_timeout_seconds:g} s.",
            )
        controller.nudge()
        await controller.wait_tick(min(0.05, deadline - loop.time()))


async def _score_on(
    controller: Controller,
    engine: Engine,
    model: str,
    version: str,
    body: bytes,
    content_type: str,
    deadline: float,
    timeout: float,
    max_queued: int,
) -> Scored | None:
    """Score on one served version within its queue limit; None if the version stopped serving meanwhile."""
    with controller.traffic.request(model, version) as stats:
        view = controller.snapshot.view(model, version)
        per_replica = controller.tuning.replica_concurrency
        limit = max(view.target_replicas if view else 1, 1) * per_replica + max_queued
        if stats.in_flight > limit:
            raise ApiError(
                "REQUEST_LIMIT_EXCEEDED",
                f"Version {version} of '{model}' has {stats.in_flight - 1} requests queued or in flight, "
                f"its limit; retry with backoff or raise the workload size.",
                429,
                # A full queue drains within about a second at the rates one replica answers.
                headers={"Retry-After": "1"},
            )
        return await _forward(controller, engine, model, version, body, content_type, deadline, timeout)


async def _forward(
    controller: Controller,
    engine: Engine,
    model: str,
    version: str,
    body: bytes,
    content_type: str,
    deadline: float,
    timeout: float,
) -> Scored | None:
    """Forward to a READY replica, waiting for one while the version starts; None if it stopped serving."""
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
            view = controller.snapshot.view(model, version)
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
            # Only a request that never reached its replica goes to another one: a request that was
            # sent may be what killed the replica, and would kill the next one too.
            connection_failures += 1
            if not isinstance(exc, ReplicaUnreachable) or connection_failures > 1:
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
        version = controller.snapshot.resolve(model, target) if model in controller.snapshot.enabled else None
        if version is not None:
            services.metrics.observe(model, version, exc.status, (time.perf_counter() - started) * 1000, None)
        raise
    latency_ms = (time.perf_counter() - started) * 1000
    services.metrics.observe(model, scored.version, scored.result.status, latency_ms, scored.queue_ms)
    return scored
