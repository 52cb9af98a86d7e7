"""Scoring URLs of seed 000: /model-endpoint/{model}/{stage|alias|version}/invocations and /model/..."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from backend import gateway
from backend.api.deps import Querier, read_body
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
    version, result = await gateway.score(
        services.controller,
        services.engine,
        model,
        target,
        body,
        content_type,
        services.settings.request_timeout_seconds,
    )
    return Response(
        result.body,
        status_code=result.status,
        media_type=result.content_type,
        headers={"served-model-name": f"{model}-{version}"},
    )
