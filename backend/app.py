"""The app factory: assembles routers, middleware, error handlers and the one lifespan."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import shutil
import socket
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from sqlalchemy.orm import Session, sessionmaker
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp

from rtserve import __version__
from rtserve.server import __doc__ as description
from rtserve.server import auth, mlflow_server, ui
from rtserve.server.allow import allowed_methods
from rtserve.server.api import endpoints_v2, metrics, openapi, permissions, secrets, serving_endpoints
from rtserve.server.api import registry as registry_routes
from rtserve.server.control.admission import Admission
from rtserve.server.control.controller import Controller
from rtserve.server.control.leadership import Leadership
from rtserve.server.control.model_endpoints import ModelEndpointService
from rtserve.server.control.serving_service import ServingEndpointService
from rtserve.server.engines.base import Engine
from rtserve.server.errors import ApiError, error_response, request_id_of
from rtserve.server.invocations_asgi import InvocationsEndpoint
from rtserve.server.mailer import Mailer
from rtserve.server.metrics import Metrics
from rtserve.server.middleware import HOST_METADATA_PATH, AuthMiddleware, ErrorLayer, MlflowDispatch, mark_logged
from rtserve.server.registry import Registry
from rtserve.server.secret_store import open_store
from rtserve.server.services import Services
from rtserve.server.settings import Settings
from rtserve.server.store import db, instance_lock, keys
from rtserve.server.store.rate_buckets import DatabaseBuckets
from rtserve.server.store.replica_slots import SlotClaims
from rtserve.server.store.ui_sessions import DatabaseSessionStore
from rtserve.server.tables.writer import InferenceLog

log = logging.getLogger("rtserve")
RAY_SEAL_KEY = "ray-seal"  # the deployment key sealing Ray actor identities, when instances share a database
UI_CSRF_KEY = "ui-csrf"  # the deployment key signing the UI's CSRF tokens, when instances share a database
VERSION = __version__


def _local_engine(settings: Settings) -> tuple[Engine, str]:
    """The default engine, and the run dir made for its sockets (removed at shutdown)."""
    from rtserve.server.engines.local import LocalEngine

    run_dir = tempfile.mkdtemp(prefix="rtserve-")  # short: Unix socket paths must stay under 108 bytes
    engine = LocalEngine(
        run_dir=run_dir,
        stop_timeout=settings.replica_drain_timeout_seconds,
        log_max_bytes=settings.replica_log_max_bytes,
        max_input_columns=settings.max_input_columns,
    )
    return engine, run_dir


def _ray_engine(settings: Settings, seal_key: bytes | None, sessions: sessionmaker[Session]) -> Engine:
    """The Ray engine (`--engine ray`): one actor per replica on the cluster at `settings.ray_address`.

    With a `seal_key` (from a database several instances share), the engine keeps its replicas when
    its instance stops (the others serve on with them), adopts those other instances start, and
    starts a replica only in a slot it claimed in the database (store/replica_slots.py).
    """
    from rtserve.server.engines.ray import RayEngine

    return RayEngine(
        settings.ray_address,
        settings.data_dir,
        namespace=settings.ray_namespace,
        warm_actors_per_node=settings.ray_warm_actors_per_node,
        replica_ports=settings.ray_replica_port_range,
        stop_timeout=settings.replica_drain_timeout_seconds,
        log_max_bytes=settings.replica_log_max_bytes,
        max_input_columns=settings.max_input_columns,
        seal_key=seal_key,
        discover=seal_key is not None,
        keep_replicas_on_close=seal_key is not None,
        claims=SlotClaims(sessions, f"{socket.gethostname()}:{os.getpid()}") if seal_key is not None else None,
    )


async def _ui_sessions(sessions: sessionmaker[Session], shared: bool) -> ui.SessionStore:
    """Sessions of the UI: in the database when instances share it (sign in on one, act on any), else in memory."""
    if not shared:
        return ui.SessionStore()
    key = await asyncio.to_thread(keys.shared_key, sessions, UI_CSRF_KEY)
    return DatabaseSessionStore(sessions, key)


def _engine(settings: Settings, seal_key: bytes | None, sessions: sessionmaker[Session]) -> tuple[Engine, str | None]:
    """The engine `settings.engine` names, and a run dir to remove at shutdown (the local engine's sockets)."""
    if settings.engine == "ray":
        return _ray_engine(settings, seal_key, sessions), None
    return _local_engine(settings)


def _registry(settings: Settings) -> Registry:
    if settings.embedded_mlflow:
        return Registry(mlflow_server.store_uri(settings), mlflow_server.artifacts_root(settings))
    return Registry(settings.mlflow_tracking_uri or "")


def _install_error_handlers(api: FastAPI) -> None:
    """Errors of the FastAPI routes as envelopes; anything else reaches the outermost `ErrorLayer`."""

    @api.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(request, exc.error_code, exc.message, exc.status, exc.headers or None)

    @api.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        message = f"Invalid request at {where}: {first.get('msg', exc)}"
        return error_response(request, "INVALID_PARAMETER_VALUE", message)

    @api.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        method, path = request.method, request.url.path
        if exc.status_code == 404:
            return error_response(request, "ENDPOINT_NOT_FOUND", f"No API route {method} {path}.", 404)
        if exc.status_code == 405:
            message = f"{method} is not allowed on {path}."
            return error_response(request, "METHOD_NOT_ALLOWED", message, 405, {"Allow": allowed_methods(request)})
        return error_response(request, "BAD_REQUEST", str(exc.detail), exc.status_code)

    @api.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Starlette answers with this, then re-raises to the server; the error layer sees it as logged.
        request_id = request_id_of(request.scope)
        method, path = request.method, request.url.path
        log.error("Unexpected error in %s %s (request id %s)", method, path, request_id, exc_info=exc)
        mark_logged(request.scope)
        message = f"rtserve hit an unexpected error (request id {request_id}); the backend's log has the details."
        return error_response(request, "INTERNAL_ERROR", message, 500)


def create_app(
    settings: Settings,
    *,
    engine: Engine | None = None,
    registry: Registry | None = None,
    clock: Callable[[], float] = time.time,
) -> ASGIApp:
    """The whole service as one ASGI app, its collaborators injected or built from `settings`.

    `engine` runs replicas (default: the one `settings.engine` names); `registry` is the MLflow
    registry the controller reads (default: the embedded one, read in process, or `settings.mlflow_tracking_uri`);
    `clock` is the controller's time. Started and stopped by the ASGI lifespan.
    """
    if engine is None and settings.engine == "ray" and importlib.util.find_spec("ray") is None:
        raise RuntimeError("The ray engine needs the 'ray' extra, which is not installed: pip install 'rtserve[ray]'")
    settings.ensure_dirs()
    # MLflow's client retries for minutes by default; a registry outage should surface in seconds.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    if settings.embedded_mlflow:
        mlflow_server.configure(settings)

    @asynccontextmanager
    async def lifespan(api: FastAPI) -> AsyncIterator[None]:
        url = settings.resolved_database_url
        took_data_dir = instance_lock.hold(settings.data_dir)  # one backend per data dir: a second stops here
        await asyncio.to_thread(db.migrate, url)
        engine_db = db.make_engine(url)
        sessions = db.session_factory(engine_db)
        auth.bootstrap_admin_token(sessions, settings.data_dir, settings.admin_token)
        verifier = auth.TokenVerifier(sessions)
        if settings.embedded_mlflow:
            await asyncio.to_thread(mlflow_server.warm_up)
        registry_client = registry or _registry(settings)
        # Before the engine starts: a second instance on the local engine is refused here.
        leadership = Leadership(url, settings.leader_heartbeat_seconds, settings.engine)
        await leadership.start()
        if leadership.shared and settings.embedded_mlflow:
            log.warning(
                "The registry is embedded (SQLite in this data dir): other instances on this database will not "
                "see its models. Several instances share an MLflow server: --mlflow-tracking-uri (docs/scale-out.md)."
            )
        seal_key = await asyncio.to_thread(keys.shared_key, sessions, RAY_SEAL_KEY) if leadership.shared else None
        replicas, run_dir = (engine, None) if engine is not None else _engine(settings, seal_key, sessions)
        replicas.set_leading(leadership.leading)
        await replicas.start()
        mailer = Mailer(settings) if settings.smtp_host else None
        if mailer is not None:
            mailer.start()
        secret_store = await asyncio.to_thread(open_store, sessions, settings.secrets_key_path)
        controller = Controller(settings, sessions, registry_client, replicas, clock, leadership, mailer, secret_store)
        inference_log = InferenceLog(settings, lambda: controller.snapshot)
        inference_log.start()
        # Shared, the buckets are in the database and the time is the wall clock (instances on several machines).
        admission = Admission(time.time, DatabaseBuckets(sessions)) if leadership.shared else Admission()
        api.state.services = Services(
            settings=settings,
            sessions=sessions,
            verifier=verifier,
            registry=registry_client,
            engine=replicas,
            controller=controller,
            admission=admission,
            model_endpoints=ModelEndpointService(sessions, registry_client, controller),
            serving_endpoints=ServingEndpointService(sessions, registry_client, controller, admission, secret_store),
            secrets=secret_store,
            metrics=Metrics(controller, replicas, mailer, inference_log),
            inference_log=inference_log,
            ui_sessions=await _ui_sessions(sessions, leadership.shared),
        )
        controller.start()
        try:
            yield
        finally:
            await controller.stop()
            await asyncio.to_thread(inference_log.close)  # writes what is queued
            if mailer is not None:
                mailer.close()
            await leadership.close()  # at once: another instance takes over without waiting for a timeout
            await replicas.close()
            engine_db.dispose()
            if run_dir is not None:
                shutil.rmtree(run_dir, ignore_errors=True)
            if took_data_dir:
                instance_lock.release(settings.data_dir)

    api = FastAPI(title="rtserve", description=description, version=VERSION, lifespan=lifespan)
    openapi.install(api)  # the parameters, bodies, errors and scoring URLs FastAPI cannot see
    _install_error_handlers(api)
    routers = (
        endpoints_v2.router,
        endpoints_v2.legacy_router,
        serving_endpoints.router,
        permissions.router,
        secrets.router,
        registry_routes.router,
    )
    for router in (*routers, metrics.router, ui.router):
        api.include_router(router)

    @api.get("/health", **openapi.PUBLIC_TEXT_ROUTE)
    @api.head("/health", **openapi.PUBLIC_TEXT_ROUTE)
    @api.get("/ping", **openapi.PUBLIC_TEXT_ROUTE)
    @api.head("/ping", **openapi.PUBLIC_TEXT_ROUTE)
    async def health() -> PlainTextResponse:
        return PlainTextResponse("OK")

    @api.get("/version", **openapi.PUBLIC_TEXT_ROUTE)
    @api.head("/version", **openapi.PUBLIC_TEXT_ROUTE)
    async def version() -> PlainTextResponse:
        return PlainTextResponse(VERSION)

    @api.get(HOST_METADATA_PATH, openapi_extra=openapi.HOST_METADATA)
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
    def ui_sessions() -> ui.SessionStore:
        return api.state.services.ui_sessions

    app = AuthMiddleware(app, verifier, browser=ui.BrowserAuth(verifier, ui_sessions))
    return ErrorLayer(app)
