"""What the UI changes: sign-in and sign-out, serving on and off, compute, stage transitions, queries.

Each change goes through the same service (or, for transitions, the same API handler) as the REST
API, after the same ordered permission check. Every state-changing request must carry the
session's CSRF token (the X-CSRF-Token header, or the csrf_token form field), or it gets a 403.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from fastapi import APIRouter, Depends, Form, Request, Response
from fastapi.responses import FileResponse, RedirectResponse

from rtserve.server.auth import Permission, hash_token
from rtserve.server.control import stages
from rtserve.server.control.endpoint import EndpointKind
from rtserve.server.control.snapshot import Snapshot
from rtserve.server.control.status import model_endpoint as model_status
from rtserve.server.control.workloads import SERVING_STAGES
from rtserve.server.errors import ApiError, invalid
from rtserve.server.services import services_of
from rtserve.server.ui import query
from rtserve.server.ui.render import (
    UiRoute,
    error_response,
    fragment,
    model_path,
    page,
    principal_of,
    redirect,
    require,
    session_of,
)
from rtserve.server.ui.session import (
    CSRF_FIELD,
    CSRF_HEADER,
    LOGIN_COOKIE,
    SAFE_METHODS,
    SESSION_COOKIE,
    SessionStore,
    call_store,
    csrf_matches,
    safe_next,
)

STATIC_DIR = Path(__file__).parent / "static"
STATIC_TYPES = {".js": "text/javascript", ".css": "text/css", ".txt": "text/plain"}
LOGIN_NOTICES = {
    "expired": "Your session ended (it expired, the backend restarted, or the token was revoked). Sign in again.",
    "signin": "Sign in to continue.",
    "signedout": "You are signed out.",
}


async def csrf_protect(request: Request) -> None:
    """Refuse (403) a state-changing request without this session's CSRF token."""
    if request.method in SAFE_METHODS:
        return
    session = session_of(request)
    if session is None:
        raise ApiError("UNAUTHENTICATED", "Sign in first.")
    presented = request.headers.get(CSRF_HEADER)
    if presented is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        value = (await request.form()).get(CSRF_FIELD)
        presented = value if isinstance(value, str) else None
    if not csrf_matches(session, presented):
        raise ApiError(
            "PERMISSION_DENIED",
            "This request did not carry the page's security token (CSRF check), so nothing was changed. "
            "Reload the page and try again.",
        )


# Sign-in, static files and redirects: reachable without a session (BrowserAuth lets them through).
public_router = APIRouter(route_class=UiRoute, include_in_schema=False)
router = APIRouter(prefix="/ui", route_class=UiRoute, include_in_schema=False, dependencies=[Depends(csrf_protect)])


def _store(request: Request) -> SessionStore:
    return request.scope["state"]["ui_sessions"]


def _set_cookie(request: Request, response: Response, name: str, value: str, max_age: int | None = None) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/ui",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


@public_router.get("/")
@public_router.get("/ui")
async def to_ui() -> RedirectResponse:
    return RedirectResponse("/ui/", status_code=307)


@public_router.get("/ui/static/{filename}")
async def static(filename: str) -> Response:
    path = STATIC_DIR / filename
    if "/" in filename or filename.startswith(".") or not path.is_file() or path.suffix not in STATIC_TYPES:
        return Response("Not found", status_code=404, media_type="text/plain")
    headers = {"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"}
    return FileResponse(path, media_type=STATIC_TYPES[path.suffix], headers=headers)


@public_router.get("/ui/login")
async def login_page(request: Request, next: str = "/ui/", reason: str = "") -> Response:
    if principal_of(request) is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return _login_form(request, safe_next(next), notice=LOGIN_NOTICES.get(reason, ""))


def _login_form(request: Request, next_url: str, notice: str = "", error: str = "", code: int = 200) -> Response:
    login_csrf = secrets.token_urlsafe(24)
    response = page(
        request, "login.html", status=code, login_csrf=login_csrf, next=next_url, notice=notice, error=error
    )
    _set_cookie(request, response, LOGIN_COOKIE, login_csrf, max_age=3600)
    return response


@public_router.post("/ui/login")
async def login(
    request: Request, token: str = Form(""), login_csrf: str = Form(""), next: str = Form("/ui/")
) -> Response:
    expected = request.cookies.get(LOGIN_COOKIE, "")
    if not expected or not secrets.compare_digest(expected.encode(), login_csrf.encode()):
        return _login_form(
            request, safe_next(next), error="The sign-in form expired or came from another site. Try again.", code=403
        )
    principal = await services_of(request).verifier.check(token.strip()) if token.strip() else None
    if principal is None:
        message = (
            "Enter a token."
            if not token.strip()
            else "That token is not valid (unknown or revoked). Create one with `rtserve tokens create`."
        )
        return _login_form(request, safe_next(next), error=message, code=401)
    store = _store(request)
    if (old := session_of(request)) is not None:
        await call_store(store, store.delete, old.session_id)  # a fresh id at every sign-in: no session fixation
    session = await call_store(store, store.create, hash_token(token.strip()))
    response = RedirectResponse(safe_next(next), status_code=303)
    _set_cookie(request, response, SESSION_COOKIE, session.session_id)
    response.delete_cookie(LOGIN_COOKIE, path="/ui", httponly=True, samesite="strict")
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    session = session_of(request)
    if session is not None:
        store = _store(request)
        await call_store(store, store.delete, session.session_id)
    response = RedirectResponse("/ui/login?reason=signedout", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/ui", httponly=True, samesite="strict")
    return response


@router.post("/models/{name}/enable")
async def enable(request: Request, name: str) -> Response:
    principal = require(request, Permission.CAN_MANAGE, "enabling serving")
    services = services_of(request)
    await services.model_endpoints.enable(name, principal.name)
    return redirect(
        f"{model_path(name, 'serving')}",
        session_of(request),
        "ok",
        "Serving enabled. Versions in Staging and Production are starting; the status turns Ready when one answers.",
    )


@router.post("/models/{name}/disable")
async def disable(request: Request, name: str) -> Response:
    principal = require(request, Permission.CAN_MANAGE, "disabling serving")
    services = services_of(request)
    await services.model_endpoints.disable(name, principal.name)
    message = "Serving disabled: every replica is stopping."
    return redirect(model_path(name, "serving"), session_of(request), "ok", message)


def _observes_config(snapshot: Snapshot, name: str, stage: str, wanted: tuple[str, bool]) -> bool:
    served = [v for v in model_status.version_views(snapshot, name) if v.stage == stage]
    return all((v.compute.workload_size_id, v.compute.scale_to_zero_enabled) == wanted for v in served)


@router.post("/models/{name}/compute")
async def update_compute(
    request: Request,
    name: str,
    stage: str = Form(...),
    workload_size_id: str = Form(...),
    scale_to_zero_enabled: str = Form("false"),
) -> Response:
    principal = require(request, Permission.CAN_MANAGE, "changing compute settings")
    services = services_of(request)
    scale_to_zero = scale_to_zero_enabled.lower() in ("true", "on", "1")
    current = {c.stage: c for c in await services.model_endpoints.require_enabled(name)}.get(stage)
    before = (current.workload_size_id, current.scale_to_zero_enabled) if current is not None else None
    spec: dict = {"workload_size_id": workload_size_id, "scale_to_zero_enabled": scale_to_zero}
    # The form edits neither batching nor placement (API extensions): keep what is set rather than reset it. A spec
    # without `placement` keeps the stage's placement.
    if current is not None and current.max_batch_size > 1:
        spec.update(max_batch_size=current.max_batch_size, max_batch_wait_ms=current.max_batch_wait_ms)
    await services.model_endpoints.update_compute_config(name, stage, spec, principal.name)
    described = f"{workload_size_id}, scale to zero {'on' if scale_to_zero else 'off'}"
    if before == (workload_size_id, scale_to_zero):
        message = f"{stage} already runs {described}: nothing to change."
    else:
        await services.controller.observe(
            lambda seen: _observes_config(seen, name, stage, (workload_size_id, scale_to_zero)), 2.0
        )
        message = f"Saved {stage}: {described}. The versions in that stage apply it now; progress is below."
    return redirect(model_path(name, "compute"), session_of(request), "ok", message)


@router.post("/models/{name}/versions/{version}/transition")
async def transition(
    request: Request, name: str, version: str, stage: str = Form(...), archive_existing_versions: str = Form("false")
) -> Response:
    principal = require(request, Permission.CAN_MANAGE, "transitioning a version's stage")
    target = stages.canonical_stage(stage)
    if target is None:
        raise invalid(f"Pick a stage among {', '.join(stages.ALL_STAGES)}; got {stage!r}.")
    # MLflow archives other versions only when moving into an active stage; elsewhere the box means nothing.
    archive = archive_existing_versions.lower() in ("true", "on", "1") and target in SERVING_STAGES
    services = services_of(request)
    await services.model_endpoints.transition(name, version, target, archive, "from the rtserve UI", principal.name)
    if target in SERVING_STAGES and services.controller.snapshot.model_endpoint(name) is not None:

        def moved(seen: Snapshot) -> bool:
            return getattr(seen.view(name, version), "stage", None) == target

        await services.controller.observe(moved, 2.0)
    archived = " Any versions that were in that stage are archived." if archive else ""
    return redirect(model_path(name), session_of(request), "ok", f"Version {version} moved to {target}.{archived}")


@router.post("/models/{name}/query")
async def send_query(request: Request, name: str, target: str = Form(...), body: str = Form("")) -> Response:
    principal = require(request, Permission.CAN_VIEW, "sending a request to the model")
    result = await query.send(services_of(request), principal, EndpointKind.MODEL, name, target, body)
    return fragment(request, "_query_result.html", **vars(result))


@router.api_route("/{rest:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
async def not_found_page(request: Request, rest: str) -> Response:
    return error_response(
        request, 404, "ENDPOINT_NOT_FOUND", f"There is no UI page at {request.url.path}. Start from the Models page."
    )
