"""The UI's pages and the fragments htmx polls: models, versions, serving, compute settings, events."""

from __future__ import annotations

import asyncio
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request, Response

from rtserve.server import logged_files
from rtserve.server.auth import Permission
from rtserve.server.control import logs, stages
from rtserve.server.control.workloads import SERVING_STAGES
from rtserve.server.errors import ApiError
from rtserve.server.services import services_of
from rtserve.server.ui import model_views
from rtserve.server.ui.render import UiRoute, fragment, model_path, page, require

router = APIRouter(prefix="/ui", route_class=UiRoute, include_in_schema=False)


def _selected(state: model_views.ServingState, requested: str | None) -> model_views.VersionTab | None:
    """The version tab to show: the one asked for, else Production's, else Staging's, else the newest."""
    if requested:
        return state.version(requested)
    for stage in ("Production", "Staging"):
        if (version := state.routes.get(stage)) and state.version(version):
            return state.version(version)
    return state.versions[-1] if state.versions else None


def _serving_context(request: Request, state: model_views.ServingState, requested: str | None) -> dict:
    selected = _selected(state, requested)
    services = services_of(request)
    params = {"version": requested or "", "enabled": int(state.enabled), "shown": selected.version if selected else ""}
    return {
        "state": state,
        "selected": selected,
        "requested": requested,
        "urls": model_views.model_urls(str(request.base_url), state),
        "replicas": model_views.replicas(services, state.model, selected.version) if selected else [],
        "live_url": f"{model_path(state.model, 'serving')}/live?{urlencode(params)}",
    }


@router.get("/")
async def models_page(request: Request) -> Response:
    require(request, Permission.CAN_VIEW, "viewing models")
    services = services_of(request)
    rows = await model_views.model_rows(services)
    return page(
        request,
        "models.html",
        nav="models",
        models=rows,
        tracking_uri=services.registry.tracking_uri,
        base_url=str(request.base_url).rstrip("/"),
    )


@router.get("/models/{name}")
async def versions_page(request: Request, name: str) -> Response:
    require(request, Permission.CAN_VIEW, "viewing a model")
    services = services_of(request)
    model, versions = await asyncio.gather(
        model_views.registered_model(services, name), model_views.model_versions(services, name)
    )
    return page(
        request,
        "versions.html",
        nav="models",
        tab="versions",
        model=model,
        versions=versions,
        serving=await model_views.serving_state(services, name),
        stages=stages.ALL_STAGES,
    )


@router.get("/models/{name}/serving")
async def serving_page(request: Request, name: str, version: str | None = None) -> Response:
    require(request, Permission.CAN_VIEW, "viewing serving status")
    services = services_of(request)
    model = await model_views.registered_model(services, name)
    state = await model_views.serving_state(services, name)
    context = _serving_context(request, state, version)
    selected = context["selected"]
    logs_context = await _logs_context(request, name, selected.version, None) if selected else {}
    return page(
        request,
        "serving.html",
        nav="models",
        tab="serving",
        model=model,
        **context,
        **logs_context,
        body="{}",
    )


@router.get("/models/{name}/serving/live")
async def serving_live(request: Request, name: str, version: str = "", enabled: int = 0, shown: str = "") -> Response:
    """The parts of the Serving tab that change by themselves, swapped out-of-band by the poller."""
    require(request, Permission.CAN_VIEW, "viewing serving status")
    state = await model_views.serving_state(services_of(request), name)
    context = _serving_context(request, state, version or None)
    now_shown = context["selected"].version if context["selected"] else ""
    if bool(enabled) != state.enabled or now_shown != shown:
        # The page's layout changed (serving switched, a version appeared or left): reload it whole.
        return Response(status_code=200, headers={"HX-Refresh": "true", "Cache-Control": "no-store"})
    return fragment(request, "_serving_live.html", **context)


async def _logs_context(request: Request, name: str, version: str, replica: str | None, build: bool = False) -> dict:
    services = services_of(request)
    log_error = ""
    try:
        if build:  # the version's build log: its environment (docs/environments.md) and its preparation
            text = await logs.build_logs(services.sessions, services.settings.data_dir, name, version)
        else:
            text = await model_views.version_logs(services, name, version, replica)
    except ApiError as exc:
        text, log_error = "", f"{exc.message} The replica's log may have been removed; pick another tab."
    return {
        "logs_url": f"{model_path(name)}/versions/{quote(version, safe='')}/logs",
        "log_replicas": model_views.log_replicas(services, name, version),
        "replica": replica,
        "build": build,
        "log_text": text,
        "log_error": log_error,
    }


@router.get("/models/{name}/versions/{version}/logs")
async def logs_fragment(
    request: Request, name: str, version: str, replica: str | None = None, build: bool = False
) -> Response:
    require(request, Permission.CAN_VIEW, "reading logs")
    return fragment(request, "_logs.html", **await _logs_context(request, name, version, replica or None, build))


@router.get("/models/{name}/versions/{version}/example")
async def example_fragment(request: Request, name: str, version: str, body: str = "") -> Response:
    require(request, Permission.CAN_VIEW, "reading the input example")
    found = await logged_files.input_example(services_of(request), name, version)
    if found is None:
        note = (
            f"Version {version} was logged without an input example. Write a request body, e.g. "
            '{"dataframe_split": {"columns": [...], "data": [[...]]}}, or log the model with input_example=...'
        )
        return fragment(request, "_query_body.html", body=body or "{}", example_note=note, example_level="warn")
    filename, text = found
    note = f"Loaded the input example logged with version {version} ({filename})."
    return fragment(request, "_query_body.html", body=text, example_note=note)


@router.get("/models/{name}/compute")
async def compute_page(request: Request, name: str) -> Response:
    require(request, Permission.CAN_VIEW, "viewing compute settings")
    services = services_of(request)
    model = await model_views.registered_model(services, name)
    return page(
        request,
        "compute.html",
        nav="models",
        tab="compute",
        model=model,
        state=await model_views.serving_state(services, name),
        stages=SERVING_STAGES,
        sizes=model_views.workload_sizes(services.settings.replica_concurrency),
        replica_concurrency=services.settings.replica_concurrency,
        idle=model_views.duration(services.settings.scale_to_zero_idle_seconds),
    )


@router.get("/models/{name}/compute/progress")
async def compute_progress(request: Request, name: str) -> Response:
    require(request, Permission.CAN_VIEW, "viewing compute settings")
    return fragment(
        request, "_compute_progress.html", state=await model_views.serving_state(services_of(request), name)
    )


@router.get("/models/{name}/events")
async def events_page(request: Request, name: str, version: str | None = None) -> Response:
    require(request, Permission.CAN_VIEW, "viewing model events")
    services = services_of(request)
    model = await model_views.registered_model(services, name)
    every_event = await logs.event_history(services.sessions, name, None)
    events = await logs.event_history(services.sessions, name, version) if version else every_event
    all_versions = sorted({e["endpoint_version_name"] for e in every_event} - {None}, key=stages.version_number)
    return page(
        request,
        "events.html",
        nav="models",
        tab="events",
        model=model,
        events=events,
        version=version or "",
        event_versions=all_versions,
    )
