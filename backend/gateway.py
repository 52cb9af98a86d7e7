"""The scoring path: resolve a URL to a served version and forward the request to a replica.

Requests that find no READY replica wait (they are queued, not failed) while the version starts,
up to the request timeout. A replica that dies mid-request is retried once on another replica:
scoring is a pure function of the input, so a retry cannot apply anything twice.
"""

from __future__ import annotations

import asyncio
import contextlib

from backend.control.controller import Controller
from backend.control.reconciler import VersionState
from backend.engines.base import Engine, InvocationResult, NoReadyReplica
from backend.errors import ApiError, not_found


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


async def score(
    controller: Controller, engine: Engine, model: str, target: str, body: bytes, content_type: str, timeout: float
) -> tuple[str, InvocationResult]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    if not controller.synced.is_set():  # just restarted: wait for the registry rather than answer 404
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(controller.synced.wait(), timeout)
    connection_failures = 0
    while True:
        version = resolve(controller, model, target)
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise ApiError(
                "DEADLINE_EXCEEDED", f"No replica of version {version} of '{model}' answered in {timeout:g} s."
            )
        try:
            return version, await engine.invoke(model, version, body, content_type, remaining)
        except NoReadyReplica:
            view = controller.view(model, version)
            if view is not None and view.state == VersionState.FAILED:
                raise ApiError(
                    "TEMPORARILY_UNAVAILABLE", f"Version {version} of '{model}' is not serving: {view.message}"
                ) from None
            await controller.wait_tick(min(remaining, 1.0))
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
