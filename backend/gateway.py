"""The scoring path, one for both APIs: resolve a URL to a destination and forward the request to a replica.

Both a model endpoint's URL (/model/{model}/{route}/invocations) and a serving endpoint's
(/serving-endpoints/{name}[/served-models/{served}]/invocations) name an endpoint and a route of the
one internal model (control/endpoint.py); the route draws a destination (a model version) by weight.
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
from rtserve.server.control.endpoint import Destination, EndpointKind
from rtserve.server.control.reconciler import VersionState
from rtserve.server.control.snapshot import Snapshot
from rtserve.server.engines.base import Engine, InvocationResult, NoReadyReplica, ReplicaUnreachable
from rtserve.server.errors import ApiError, not_found

if TYPE_CHECKING:
    from rtserve.server.services import Services


def resolve(snapshot: Snapshot, kind: EndpointKind, name: str, route_name: str) -> Destination:
    """The destination of one request to `route_name` of an endpoint (drawn by weight), or 404 saying why not."""
    endpoint = snapshot.endpoint(kind, name)
    if endpoint is None:
        if kind is EndpointKind.MODEL:
            raise not_found(f"Serving is not enabled for registered model '{name}'.")
        raise not_found(f"Serving endpoint '{name}' does not exist.")
    route = endpoint.route(route_name)
    if route is not None:
        return route.pick()
    names = sorted(endpoint.routes, key=lambda route: (route.isdigit(), route))
    if kind is EndpointKind.MODEL:
        hint = f" Available: {', '.join(names)}." if names else " Nothing is served yet."
        raise not_found(f"'{route_name}' is not a served stage, alias or version of '{name}'.{hint}")
    served = ", ".join(route for route in names if route)
    raise not_found(f"Serving endpoint '{name}' has no served model '{route_name}'. Served: {served}.")


async def resolve_when_known(
    services: Services, kind: EndpointKind, name: str, route_name: str, deadline: float
) -> Destination:
    """`resolve`, except that a model endpoint whose routes are being re-read (a stage moved, serving
    was just enabled) is waited for until `deadline`, and a 404 for a model the registry does not
    have says so. Off the hot path: only a request that `resolve` refuses gets here."""
    controller = services.controller
    loop = asyncio.get_running_loop()
    while True:
        try:
            return resolve(controller.snapshot, kind, name, route_name)
        except ApiError as exc:
            if kind is not EndpointKind.MODEL or exc.status != 404:
                raise
            seen = controller.snapshot
            if seen.model_endpoint(name) is not None and seen.is_stale(name) and loop.time() < deadline:
                controller.nudge()
                await controller.wait_tick(min(0.05, deadline - loop.time()))
                continue
            if seen.model_endpoint(name) is None:
                await _unless_registered(services, name)
            raise


async def _unless_registered(services: Services, model: str) -> None:
    """Raise the registry's 404 if `model` is not a registered model (a typo in the URL, most often)."""
    try:
        await asyncio.to_thread(services.registry.require_model, model)
    except ApiError as exc:
        if exc.status == 404:
            raise not_found(f"Registered model '{model}' does not exist; check the name in the URL.") from None
        # The registry cannot answer now: the endpoint's own 404 stands.


@dataclass(frozen=True)
class Scored:
    destination: Destination
    result: InvocationResult
    queue_ms: float  # time the request waited for a replica (cold start, all replicas busy starting)


async def score(
    services: Services, kind: EndpointKind, name: str, route_name: str, body: bytes, content_type: str
) -> Scored:
    """Score on an endpoint's route, counting the request in the metrics whatever its outcome."""
    controller, settings = services.controller, services.settings
    timeout = settings.request_timeout_seconds
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    started = time.perf_counter()
    if not controller.synced.is_set():  # just restarted: wait for the registry and store rather than answer 404
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(controller.synced.wait(), timeout)
    while True:
        destination = await resolve_when_known(services, kind, name, route_name, deadline)
        model, version = destination.key
        try:
            scored = await _score_on(
                controller,
                services.engine,
                destination,
                body,
                content_type,
                deadline,
                timeout,
                settings.max_queued_requests,
            )
        except ApiError as exc:
            services.metrics.observe(model, version, exc.status, (time.perf_counter() - started) * 1000, None)
            raise
        if scored is not None:
            latency_ms = (time.perf_counter() - started) * 1000
            services.metrics.observe(model, version, scored.result.status, latency_ms, scored.queue_ms)
            return scored
        # The version is not (or no longer) served: a config just created, or a route that moved on while
        # the request waited. Let the controller catch up, then resolve again.
        if loop.time() >= deadline:
            noun = kind.noun[0].upper() + kind.noun[1:]
            raise ApiError("DEADLINE_EXCEEDED", f"{noun} '{name}' did not answer within {timeout:g} s.")
        controller.nudge()
        await controller.wait_tick(min(0.05, deadline - loop.time()))


async def _score_on(
    controller: Controller,
    engine: Engine,
    destination: Destination,
    body: bytes,
    content_type: str,
    deadline: float,
    timeout: float,
    max_queued: int,
) -> Scored | None:
    """Score on one destination within its queue limit; None if its version stopped serving meanwhile."""
    model, version = destination.key
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
        return await _forward(controller, engine, destination, body, content_type, deadline, timeout)


async def _forward(
    controller: Controller,
    engine: Engine,
    destination: Destination,
    body: bytes,
    content_type: str,
    deadline: float,
    timeout: float,
) -> Scored | None:
    """Forward to a READY replica, waiting for one while the version starts; None if it stopped serving."""
    model, version = destination.key
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
            return Scored(destination, result, (dispatched - arrived) * 1000)
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
