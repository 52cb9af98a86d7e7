"""The app factory: assembles routers, middleware, error handlers and the one lifespan."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp

from backend import __doc__ as description
from backend import auth, mlflow_server, ui
from backend.api import endpoints_v2, metrics, permissions, registry, serving_endpoints
from backend.control.controller import Controller
from backend.control.endpoints import EndpointService
from backend.control.serving_service import ServingEndpointService
from backend.engines.base import Engine
from backend.errors import ApiError, envelope, error_response
from backend.invocations_asgi import InvocationsEndpoint
from backend.metrics import Metrics
from backend.middleware import HOST_METADATA_PATH, AuthMiddleware, MlflowDispatch
from backend.registry import Registry
from backend.services import Services
from backend.settings import Settings
from backend.store import db

log = logging.getLogger("rtserve")
VERSION = "0.1.0"


def _default_engine(run_dir: str) -> Engine:
    from backend.engines.local import LocalEngine

    return LocalEngine(run_dir=run_dir)


def _install_error_handlers(api: FastAPI) -> None:
    @api.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.error_code, exc.message, exc.status, exc.headers or None)

    @api.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return error_response("INVALID_PARAMETER_VALUE", f"Invalid request at {where}: {first.get('msg', exc)}")

    @api.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return error_response("ENDPOINT_NOT_FOUND", f"No API route {request.method} {request.url.path}.", 404)
        if exc.status_code == 405:
            return error_response("METHOD_NOT_ALLOWED", f"{request.method} is not allowed on {request.url.path}.", 405)
        return error_response("BAD_REQUEST", str(exc.detail), exc.status_code)

    @api.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return JSONResponse(envelope("INTERNAL_ERROR", f"Unexpected error: {type(exc).__name__}"), status_code=500)


def create_app(settings: Settings, engine_factory: Callable[[str], Engine] = _default_engine) -> ASGIApp:
    settings.ensure_dirs()
    # MLflow's client retries for minutes by default; a registry outage should surface in seconds.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    if settings.embedded_mlflow:
        mlflow_server.configure(settings)

    @asynccontextmanager
    async def lifespan(api: FastAPI) -> AsyncIterator[None]:
        url = settings.resolved_database_url
        await asyncio.to_thread(db.migrate, url)
        engine_db = db.make_engine(url)
        sessions = db.session_factory(engine_db)
        auth.bootstrap_admin_token(sessions, settings.data_dir, settings.admin_token)
        verifier = auth.TokenVerifier(sessions)
        if settings.embedded_mlflow:
            await asyncio.to_thread(mlflow_server.warm_up)
            # The backend reaches its own embedded registry over HTTP with a token only it knows.
            os.environ["MLFLOW_TRACKING_TOKEN"] = verifier.internal_token
            tracking_uri = f"http://{_loopback(settings.host)}:{settings.port}"
        else:
            tracking_uri = settings.mlflow_tracking_uri or ""
        registry_client = Registry(tracking_uri)
        run_dir = tempfile.mkdtemp(prefix="rtserve-")  # short: Unix socket paths must stay under 108 bytes
        engine = engine_factory(run_dir)
        await engine.start()
        controller = Controller(settings, sessions, registry_client, engine)
        api.state.services = Services(
            settings=settings,
            sessions=sessions,
            verifier=verifier,
            registry=registry_client,
            engine=engine,
            controller=controller,
            endpoints=EndpointService(sessions, registry_client, controller),
            serving=ServingEndpointService(sessions, registry_client, controller),
            metrics=Metrics(controller, engine),
        )
        controller.start()
        try:
            yield
        finally:
            await controller.stop()
            await engine.close()
            engine_db.dispose()
            shutil.rmtree(run_dir, ignore_errors=True)

    api = FastAPI(title="rtserve", description=description, version=VERSION, lifespan=lifespan)
    _install_error_handlers(api)
    routers = (
        endpoints_v2.router,
        endpoints_v2.legacy_router,
        serving_endpoints.router,
        permissions.router,
        registry.router,
    )
    for router in (*routers, metrics.router, ui.router):
        api.include_router(router)

    @api.get("/health", include_in_schema=False)
    @api.get("/ping", include_in_schema=False)
    async def health() -> PlainTextResponse:
        return PlainTextResponse("OK")

    @api.get("/version", include_in_schema=False)
    async def version() -> PlainTextResponse:
        return PlainTextResponse(VERSION)

    @api.get(HOST_METADATA_PATH, include_in_schema=False)
    async def host_metadata() -> dict:
        # databricks-sdk probes this before every client; rtserve has no OIDC, account or workspace id.
        return {}

    def on_registry_change() -> None:
        services = getattr(api.state, "services", None)
        if services is not None:
            services.controller.wake()

    mlflow_app = mlflow_server.asgi_app() if settings.embedded_mlflow else None
    app: ASGIApp = MlflowDispatch(api, mlflow_app, on_registry_change)
    app = InvocationsEndpoint(app, lambda: api.state.services)

    def verifier() -> auth.TokenVerifier:
        return api.state.services.verifier

    # The browser UI (/ui/) signs in with a session cookie; every other path needs a token header.
    app = AuthMiddleware(app, verifier, browser=ui.BrowserAuth(verifier))
    return app


def _loopback(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
