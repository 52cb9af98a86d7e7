"""GET /metrics: Prometheus' text format (see backend/metrics.py for the metric names)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from rtserve.server.api import openapi
from rtserve.server.api.deps import Viewer
from rtserve.server.services import services_of

router = APIRouter(tags=["metrics"])


@router.get("/metrics", response_class=openapi.PrometheusText, openapi_extra=openapi.PROMETHEUS)
async def metrics(request: Request, _: Viewer) -> Response:
    services = services_of(request)
    return Response(services.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
