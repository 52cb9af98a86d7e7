"""The Serving endpoints pages (seed 002's named endpoints): the list, one endpoint, and its query panel.

Read-only over the endpoints themselves: creating and changing them is done through the API,
Terraform or CDKTF. Querying scores through the gateway exactly as
POST /serving-endpoints/{name}[/served-models/{served}]/invocations does, after the same CAN_QUERY check.
"""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Request, Response

from rtserve.server import logged_files
from rtserve.server.auth import Permission
from rtserve.server.control.endpoint import TRAFFIC_SPLIT, EndpointKind
from rtserve.server.errors import ApiError
from rtserve.server.services import services_of
from rtserve.server.ui import query
from rtserve.server.ui.actions import csrf_protect
from rtserve.server.ui.render import SERVING_ENDPOINTS_PATH, UiRoute, endpoint_path, fragment, page, require
from rtserve.server.ui.serving_endpoint_views import EndpointView, endpoint_view, endpoint_views

router = APIRouter(
    prefix=SERVING_ENDPOINTS_PATH, route_class=UiRoute, include_in_schema=False, dependencies=[Depends(csrf_protect)]
)


def _base_url(request: Request) -> str:
    return str(request.base_url)


def _live_context(request: Request, endpoint: EndpointView) -> dict:
    """What the page's self-refreshing parts need, including the poller's own URL and what the viewer may do."""
    live_url = f"{endpoint_path(endpoint.name, 'live')}?{urlencode({'targets': endpoint.targets_key})}"
    held = _held(request, endpoint.name)
    return {"endpoint": endpoint, "live_url": live_url, "held": held.name, "can_query": held >= Permission.CAN_QUERY}


def _held(request: Request, name: str) -> Permission:
    """The signed-in token's permission on this endpoint: its own, or more from the endpoint's grants."""
    principal = require(request, Permission.CAN_VIEW, "viewing a serving endpoint")
    services = services_of(request)
    return services.admission.held(services.controller.snapshot, EndpointKind.SERVING, name, principal)


@router.get("")
@router.get("/")
async def endpoints_page(request: Request) -> Response:
    require(request, Permission.CAN_VIEW, "viewing serving endpoints")
    endpoints = await endpoint_views(services_of(request), _base_url(request))
    return page(
        request,
        "serving_endpoints.html",
        nav="serving-endpoints",
        endpoints=endpoints,
        base_url=_base_url(request).rstrip("/"),
    )


@router.get("/{name}")
async def endpoint_page(request: Request, name: str) -> Response:
    require(request, Permission.CAN_VIEW, "viewing a serving endpoint")
    endpoint = await endpoint_view(services_of(request), name, _base_url(request))
    return page(
        request,
        "serving_endpoint.html",
        nav="serving-endpoints",
        served="",
        body="{}",
        access=await services_of(request).serving_endpoints.require(name),  # its grants and rate limits
        **_live_context(request, endpoint),
    )


@router.get("/{name}/live")
async def endpoint_live(request: Request, name: str, targets: str = "", served: str = "") -> Response:
    """The parts of the endpoint page that change by themselves, swapped out-of-band by the poller.

    The query panel's dropdown is redrawn only when the served models changed (keeping the choice
    if it is still there): redrawing it on every poll would close it under the user's pointer.
    """
    require(request, Permission.CAN_VIEW, "viewing a serving endpoint")
    try:
        endpoint = await endpoint_view(services_of(request), name, _base_url(request))
    except ApiError as exc:
        if exc.status != 404:
            raise
        # Deleted while the page was open: reload it, which shows the readable 404 page.
        return Response(status_code=200, headers={"HX-Refresh": "true", "Cache-Control": "no-store"})
    redraw_targets = endpoint.targets_key != targets
    kept = served if endpoint.entity(served) is not None else ""
    return fragment(
        request,
        "_serving_endpoint_live.html",
        redraw_targets=redraw_targets,
        served=kept,
        **_live_context(request, endpoint),
    )


@router.get("/{name}/example")
async def example_fragment(request: Request, name: str, served: str = "", body: str = "") -> Response:
    """The logged input example of the chosen served model, or of the one that gets the most traffic.

    Always answers with the request body editor, so a problem is a note under it, never a lost body.
    """
    require(request, Permission.CAN_VIEW, "reading the input example")
    services = services_of(request)
    kept = body or "{}"
    try:
        endpoint = await endpoint_view(services, name, _base_url(request))
    except ApiError as exc:
        return fragment(request, "_query_body.html", body=kept, example_note=exc.message, example_level="warn")
    entity = endpoint.entity(served) if served else (endpoint.live_config.heaviest if endpoint.live_config else None)
    if entity is None:
        note = f"Serving endpoint '{name}' has no served model '{served}' any more; pick another one."
        return fragment(request, "_query_body.html", body=kept, example_note=note, example_level="warn")
    where = f"{entity.model} version {entity.version}, served model '{entity.name}'"
    if not served:
        where += f", {entity.traffic}% of the traffic"
    try:
        found = await logged_files.input_example(services, entity.model, entity.version)
    except ApiError as exc:
        note = f"Could not read the input example of {where}: {exc.message}"
        return fragment(request, "_query_body.html", body=kept, example_note=note, example_level="warn")
    if found is None:
        note = (
            f"The model of {where} was logged without an input example. Write a request body, e.g. "
            '{"dataframe_split": {"columns": [...], "data": [[...]]}}, or log the model with input_example=...'
        )
        return fragment(request, "_query_body.html", body=kept, example_note=note, example_level="warn")
    filename, text = found
    note = f"Loaded the input example logged with {where} ({filename})."
    return fragment(request, "_query_body.html", body=text, example_note=note)


@router.post("/{name}/query")
async def send_query(request: Request, name: str, served: str = Form(""), body: str = Form("")) -> Response:
    principal = require(request, Permission.CAN_VIEW, "sending a request to the serving endpoint")
    result = await query.send(
        services_of(request), principal, EndpointKind.SERVING, name, served or TRAFFIC_SPLIT, body
    )
    return fragment(request, "_query_result.html", **vars(result))
