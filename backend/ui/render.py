"""Rendering for the UI: templates and their filters, security headers, and errors as readable pages.

Every UI route uses `UiRoute`, so no exception leaves a handler as a JSON error: a backend ApiError
becomes its message in the page (or in the fragment an htmx request asked for), anything else a
page that says where to look.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from rtserve.server.auth import Permission, Principal, authorize
from rtserve.server.control.placement import Placement
from rtserve.server.errors import ApiError, request_id_of
from rtserve.server.ui.session import CSRF_FIELD, UiSession

log = logging.getLogger("rtserve.ui")
TEMPLATES_DIR = Path(__file__).parent / "templates"
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
# What each HTTP status of an error tells the user to do next.
ERROR_HINTS = {
    400: "Check the values you entered and try again.",
    401: "Sign in again with a valid token.",
    403: "Sign in with a token that has the permission this needs (see `rtserve tokens create`).",
    404: "Check the name on the Models page; it may have been deleted or renamed.",
    413: "Send a smaller request.",
    503: "The backend or the model registry is busy or unreachable; retry in a moment.",
    504: "The model took too long to answer; retry, or check the version's logs.",
}
STATE_LABELS = {
    "ENDPOINT_STATE_PENDING": ("Pending", "pending"),
    "ENDPOINT_STATE_READY": ("Ready", "ready"),
    "ENDPOINT_STATE_FAILED": ("Failed", "failed"),
    "SERVICE_STATE_PENDING": ("Pending", "pending"),
    "SERVICE_STATE_READY": ("Ready", "ready"),
    "SERVICE_STATE_FAILED": ("Failed", "failed"),
    "SERVICE_STATE_UNKNOWN": ("Unknown", "unknown"),
    "STARTING": ("Starting", "pending"),
    "READY": ("Ready", "ready"),
    "FAILED": ("Failed", "failed"),
    "CRASHED": ("Crashed", "failed"),
    "STOPPING": ("Stopping", "unknown"),
    "STOPPED": ("Stopped", "unknown"),
    # Named serving endpoints (GA API): the endpoint's config update and each served entity's deployment.
    "NOT_UPDATING": ("Not updating", "unknown"),
    "IN_PROGRESS": ("Updating", "pending"),
    "UPDATE_FAILED": ("Update failed", "failed"),
    "DEPLOYMENT_READY": ("Ready", "ready"),
    "DEPLOYMENT_CREATING": ("Creating", "pending"),
    "DEPLOYMENT_FAILED": ("Failed", "failed"),
}


def format_ms(value: int | float | None) -> str:
    if not value:
        return "-"
    moment = dt.datetime.fromtimestamp(value / 1000, tz=dt.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def format_seconds(value: float | None) -> str:
    return format_ms(value * 1000) if value else "-"


def placement_text(stored: str | None) -> str:
    """A compute config's stored placement, for reading: `node labels zone=b; resources licensed=1`."""
    placement = Placement.from_json(stored)
    return placement.describe() if placement else "any node"


def state_label(state: str | None) -> str:
    return STATE_LABELS.get(state or "", (state or "Unknown", "unknown"))[0]


def state_class(state: str | None) -> str:
    return STATE_LABELS.get(state or "", ("", "unknown"))[1]


templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
templates.env.filters.update(
    urlq=lambda value: quote(str(value), safe=""),
    ms=format_ms,
    seconds=format_seconds,
    state_label=state_label,
    state_class=state_class,
    pretty_json=lambda value: json.dumps(value, indent=2, sort_keys=False, default=str),
    placement=placement_text,
)
templates.env.globals.update(Permission=Permission, CSRF_FIELD=CSRF_FIELD)


def model_path(name: str, tab: str = "") -> str:
    return f"/ui/models/{quote(name, safe='')}" + (f"/{tab}" if tab else "")


SERVING_ENDPOINTS_PATH = "/ui/serving-endpoints"


def endpoint_path(name: str, action: str = "") -> str:
    """A named serving endpoint's page (seed 002), or one of its actions."""
    return f"{SERVING_ENDPOINTS_PATH}/{quote(name, safe='')}" + (f"/{action}" if action else "")


def _asset_version() -> str:
    """A short hash of the static files, so browsers fetch them again after an upgrade."""
    digest = hashlib.sha256()
    for path in sorted((Path(__file__).parent / "static").iterdir()):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


templates.env.globals.update(model_path=model_path, endpoint_path=endpoint_path, asset_version=_asset_version())


def principal_of(request: Request) -> Principal | None:
    return request.scope.get("state", {}).get("principal")


def session_of(request: Request) -> UiSession | None:
    return request.scope.get("state", {}).get("ui_session")


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def _context(request: Request, extra: dict[str, Any]) -> dict[str, Any]:
    principal = principal_of(request)
    session = session_of(request)
    return {
        "principal": principal,
        "csrf_token": session.csrf_token if session else "",
        "can_query": bool(principal and principal.can(Permission.CAN_QUERY)),
        "can_manage": bool(principal and principal.can(Permission.CAN_MANAGE)),
        **extra,
    }


def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A full page; flash messages left by the previous redirect are shown once."""
    session = session_of(request)
    context.setdefault("flashes", session.pop_flashes() if session else [])
    response = templates.TemplateResponse(request, template, _context(request, context), status_code=status)
    response.headers.update(SECURITY_HEADERS)
    return response


def fragment(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """Part of a page, for an htmx request."""
    response = templates.TemplateResponse(request, template, _context(request, context), status_code=status)
    response.headers.update(SECURITY_HEADERS)
    return response


def redirect(url: str, session: UiSession | None = None, level: str = "", message: str = "") -> RedirectResponse:
    """Post/redirect/get: the message is shown on the page the redirect leads to."""
    if session is not None and message:
        session.flash(level, message)
    response = RedirectResponse(url, status_code=303)
    response.headers["Cache-Control"] = "no-store"
    return response


class PageError(ApiError):
    """An ApiError with its own next step and way back, for pages outside the Models section.

    Other errors get the Models pages' hint (by status) and link back to the models.
    """

    def __init__(self, error_code: str, message: str, hint: str, back: tuple[str, str]) -> None:
        super().__init__(error_code, message)
        self.hint = hint
        self.back = back  # (URL, link text)


def error_response(
    request: Request,
    status: int,
    error_code: str,
    message: str,
    hint: str | None = None,
    back: tuple[str, str] = ("/ui/", "Back to the models"),
) -> HTMLResponse:
    hint = ERROR_HINTS.get(status, "") if hint is None else hint
    error = {"error_code": error_code, "message": message, "hint": hint}
    if is_htmx(request):
        return fragment(request, "_error.html", status=status, **error)
    return page(request, "error.html", status=status, back_url=back[0], back_label=back[1], **error)


def require(request: Request, needed: Permission, action: str) -> Principal:
    """The signed-in Principal if it may do `action`; the same decision and wording as the API."""
    principal = principal_of(request)
    if principal is None:  # BrowserAuth lets only public paths through without one
        raise ApiError("UNAUTHENTICATED", "Sign in first.")
    hint = f" Sign in with a token that has {needed.name} or more."
    authorize(principal.permission, needed, action, hint=hint)
    return principal


class UiRoute(APIRoute):
    """An APIRoute whose errors are rendered as HTML for people, never JSON or a bare 500."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except PageError as exc:
                return error_response(request, exc.status, exc.error_code, exc.message, exc.hint, exc.back)
            except ApiError as exc:
                return error_response(request, exc.status, exc.error_code, exc.message)
            except RequestValidationError as exc:
                first = exc.errors()[0] if exc.errors() else {}
                where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path"))
                message = f"The form field '{where}' is missing or invalid: {first.get('msg', 'invalid value')}."
                return error_response(request, 400, "INVALID_PARAMETER_VALUE", message)
            except StarletteHTTPException as exc:
                return error_response(request, exc.status_code, "BAD_REQUEST", str(exc.detail))
            except Exception as exc:  # noqa: BLE001 - a bug must still give the user a page that says what to do
                request_id = request_id_of(request.scope)
                log.exception("UI request %s %s failed (request id %s)", request.method, request.url.path, request_id)
                message = (
                    f"rtserve hit an unexpected error ({type(exc).__name__}, request id {request_id}). The backend's "
                    "log has the details; retry, and report it with the request id if it happens again."
                )
                return error_response(request, 500, "INTERNAL_ERROR", message)

        return guarded
