"""Scoring URLs of seed 000: /model-endpoint/{model}/{stage|alias|version}/invocations and /model/...,
and the Prometheus metrics of the scoring path."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from backend import gateway
from backend.api.deps import Querier, Viewer, read_body
from backend.services import Services

router = APIRouter(tags=["invocations"])


@router.post("/model-endpoint/{model}/{target}/invocations")
@router.post("/model/{model}/{target}/invocations")
async def invocations(request: Request, model: str, target: str, _: Querier) -> Response:
    services: Services = request.app.state.services
    if services.controller.synced.is_set():
        gateway.resolve(services.controller, model, target)  # 404 before reading a body we cannot use
    body = await read_body(request, services.settings.max_request_bytes)
    content_type = request.headers.get("content-type", "application/json")
    scored = await gateway.score_and_record(services, model, target, body, content_type)
    result = scored.result
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
