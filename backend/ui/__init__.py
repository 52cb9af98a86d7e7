"""The browser UI at /ui/: server-rendered pages (Jinja2 + htmx) over the same services as the API.

Wiring (backend/app.py): `api.include_router(ui.router)`, and `ui.BrowserAuth` given to AuthMiddleware
so that /ui/ paths authenticate with the session cookie instead of a token header.
"""

from fastapi import APIRouter

from rtserve.server.ui import actions, model_pages, serving_endpoint_pages
from rtserve.server.ui.session import BrowserAuth, SessionStore

router = APIRouter(include_in_schema=False)
router.include_router(actions.public_router)
router.include_router(model_pages.router)
router.include_router(serving_endpoint_pages.router)
router.include_router(actions.router)  # last: it ends with the catch-all "page not found"

__all__ = ["BrowserAuth", "SessionStore", "router"]
