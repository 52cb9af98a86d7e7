"""The `Allow` header of a 405: every method some route of the app answers on the request's path.

The router stops at the first route whose path matches, so the Allow it puts on its 405 names that
route's methods only; FastAPI gives each method of a path its own route (GET and DELETE on
/api/2.0/serving-endpoints/{name} are two), so the header is computed here over all of them
(`iter_route_contexts` also walks the routers FastAPI includes without copying their routes).
"""

from __future__ import annotations

from fastapi.routing import iter_route_contexts
from starlette.requests import Request
from starlette.routing import Match

# The scoring URLs (backend/invocations_asgi.py) answer POST only.
SCORING_ALLOW = "POST"


def allowed_methods(request: Request) -> str:
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.router.routes):
        route_methods = route.methods
        if route_methods and route.matches(request.scope)[0] != Match.NONE:
            methods |= route_methods
    return ", ".join(sorted(methods))
