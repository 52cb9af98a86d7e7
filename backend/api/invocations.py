"""Scoring URLs of seed 000: /model-endpoint/{model}/{stage|alias|version}/invocations and /model/...,
and the Prometheus metrics of the scoring path."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from backend import gateway
from backend.api.deps import Querier, Viewer, read_body
from backend.errors import ApiError
from backend.services import Services

router = APIRouter(tags=["invocations"])


@router.post("/model-endpoint/{model}/{target}/invocations")
@router.post("/model/{model}/{target}/invocations")
async def invocations(request: Request, model: str, target: str, _: Querier) -> Response:
    services: Services = request.app.state.services
    controller = services.controller
    started = time.perf_counter()
    if controller.synced.is_set():
        gateway.resolve(controller, model, target)  # 404 before reading a body we cannot use
    try:
        body = await read_body(request, services.settings.max_request_bytes)
        scored = await gateway.score(
            controller,
            services.engine,
            model,
            target,
            body,
            request.headers.get("content-type", "application/json"),
            services.settings.request_timeout_seconds,
            services.settings.max_queued_requests,
        )
    except ApiError as exc:
        version = controller.resolve(model, target) if model in controller.enabled else None
        if version is not None:
            services.metrics.observe(model, version, exc.status, (time.perf_counter() - started) * 1000, None)
        raise
    result = scored.result
    services.metrics.observe(
        model, scored.version, result.status, (time.perf_counter() - started) * 1000, scored.queue_ms
    )
    return Response(
        result.body,
        status_code=result.status,
        media_type=result.content_type,
        headers={"served-model-name": f"{model}-{scored.version}"},
    )


@router.get("/metrics")
async def metrics(request: Request, _: Viewer) -> Response:
    services: Services = request.app.state.services
    return Response(services.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
