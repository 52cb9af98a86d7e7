"""The real rtserve app, with a fake engine and the fake registry, for tests of its clients.

`running_app` builds the app with `create_app` and starts its lifespan on one background event loop
shared by the test session; every test gets its own app, database and data dir. The embedded MLflow
server caches its store per process, so every app shares one MLflow store (registered models are
replaced by each test's set-up, see `FakeRegistry.register`).

Clients reach the app in process (`AppServer.transport()`, an httpx transport for synchronous
clients such as the provider's) or over HTTP (`AppServer.serve()`, uvicorn on a free port, for a
provider that Terraform runs in a subprocess).

Every request first lets the controller converge (`settle`): the controller's clock is frozen and
it ticks only when woken, so each answer describes the state the backend reaches after the changes
made so far, never a state half-way. "Pending for N polls" is reproduced with the engine's `hold`
(replicas stay STARTING) released after N status reads (`pending_polls`, `rollout_polls`).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import os
import re
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import httpx
from fastapi import FastAPI
from sqlalchemy import event
from starlette.types import ASGIApp, Receive, Scope, Send

from rtserve.server import auth, mlflow_server
from rtserve.server.app import create_app
from rtserve.server.auth import Permission
from rtserve.server.settings import Settings
from tests.fakes.engine import FakeEngine
from tests.fakes.registry import FakeRegistry

T = TypeVar("T")
ADMIN_TOKEN = "rtsv-admin-token-for-tests"
HOST = "http://rtserve.test"
# The principals a grant may name, besides the admin token: token name -> permission.
TOKENS = {"alice": Permission.CAN_VIEW, "bob": Permission.CAN_QUERY, "ci": Permission.CAN_MANAGE}
SERVING_ENDPOINT = re.compile(r"^/api/2\.0/serving-endpoints/([^/]+)$")


# -- what the session shares -----------------------------------------------------------------------
class _Shared:
    """The background event loop every app runs on, and the one MLflow store they share."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="rtserve-tests-"))
        atexit.register(shutil.rmtree, self.root, True)
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, name="rtserve-test-app", daemon=True).start()
        store = Settings(data_dir=self.root / "mlflow")
        store.ensure_dirs()
        with _environment_restored():
            mlflow_server.configure(store)
            mlflow_server.warm_up()  # MLflow's server caches this store for the rest of the process
        self.registry = FakeRegistry(mlflow_server.store_uri(store), mlflow_server.artifacts_root(store))

    def run(self, coro: Awaitable[T], timeout: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)  # type: ignore[arg-type]


_shared: _Shared | None = None
_shared_lock = threading.Lock()


def shared() -> _Shared:
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = _Shared()
        return _shared


@contextlib.contextmanager
def _environment_restored() -> Iterator[None]:
    """Undo what `create_app` and MLflow's set-up write to the process: os.environ (they configure MLflow's
    server) and MLflow's process-wide tracking and registry URIs (its server sets the registry URI to its
    store), which the stock client of later tests would otherwise keep using."""
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    saved = dict(os.environ)
    uris = (registry_utils._registry_uri, tracking_utils._tracking_uri)
    try:
        yield
    finally:
        for name in set(os.environ) - set(saved):
            del os.environ[name]
        os.environ.update(saved)
        registry_utils._registry_uri, tracking_utils._tracking_uri = uris


# -- one app ---------------------------------------------------------------------------------------
class ManualClock:
    """The controller's clock: frozen unless a test advances it (no retry or scale-down happens by itself)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class AppServer:
    """One real app (fresh database and data dir) with a `FakeEngine`, and what tests need around it.

    `calls` records every request clients sent through `transport()` or `serve()` as
    (method, path, query parameters and JSON body merged); the helpers below reach the app without
    being recorded.
    """

    def __init__(self, root: Path, engine: FakeEngine | None = None) -> None:
        self.shared = shared()
        self.root = root
        self.registry = self.shared.registry
        self.engine = engine or FakeEngine()
        self.clock = ManualClock()
        self.token = ADMIN_TOKEN
        self.tokens = {name: f"rtsv-{name}-token-for-tests" for name in TOKENS}
        self.settings = Settings(
            data_dir=root / "data",
            admin_token=ADMIN_TOKEN,
            reconcile_interval_seconds=3600.0,  # ticks happen when woken: by the API, or by `settle`
            registry_poll_seconds=3600.0,
            upscale_delay_seconds=0.0,
            downscale_delay_seconds=0.0,
        )
        self.calls: list[tuple[str, str, dict]] = []
        self.url: str | None = None
        self._app: ASGIApp | None = None
        self._api: FastAPI | None = None
        self._stop: asyncio.Event | None = None
        self._lifespan: asyncio.Future | None = None
        self._settle_lock: asyncio.Lock | None = None
        self._dirty = True
        self._polls: tuple[str, int] | None = None
        self._ticks: _TickCounter | None = None
        self._lock = threading.Lock()
        self._start_lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the app (its lifespan) unless it runs already; every way of reaching it calls this."""
        with self._start_lock:
            if self._api is None:
                self._start_now()

    def _start_now(self) -> None:
        with _environment_restored():
            self._app = create_app(self.settings, engine=self.engine, registry=self.registry, clock=self.clock)
        api = self._app
        while not isinstance(api, FastAPI):
            api = api.app  # type: ignore[attr-defined]
        self._api = api
        self.run(self._start())
        sessions = api.state.services.sessions
        for name, permission in TOKENS.items():
            auth.create_token(sessions, name=name, permission=permission, token=self.tokens[name])

    async def _start(self) -> None:
        self._stop = asyncio.Event()
        self._settle_lock = asyncio.Lock()
        started: asyncio.Future = asyncio.get_running_loop().create_future()
        self._lifespan = asyncio.ensure_future(self._run_lifespan(started))
        await started

    async def _run_lifespan(self, started: asyncio.Future) -> None:
        assert self._api is not None and self._stop is not None
        try:
            async with self._api.router.lifespan_context(self._api):
                started.set_result(None)
                await self._stop.wait()
        except BaseException as exc:
            if not started.done():
                started.set_exception(exc)
            raise

    def stop(self) -> None:
        if self._api is None:
            return

        async def stop() -> None:
            assert self._stop is not None and self._lifespan is not None
            self._stop.set()
            await self._lifespan

        self.run(stop())

    def run(self, coro: Awaitable[T], timeout: float = 60.0) -> T:
        return self.shared.run(coro, timeout)

    @property
    def services(self) -> Any:
        self.start()
        assert self._api is not None
        return self._api.state.services

    # -- reaching the app ------------------------------------------------------------------------
    def transport(self) -> httpx.BaseTransport:
        """An httpx transport for synchronous clients: requests go to the app in process, recorded."""
        return _Bridge(self, self._recorded)

    @contextlib.contextmanager
    def serve(self) -> Iterator[str]:
        """Serve the app over HTTP on a free port (requests recorded); yields its URL, also `self.url`."""
        import uvicorn

        self.start()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        config = uvicorn.Config(
            self._recorded,
            interface="asgi3",
            lifespan="off",
            log_level="warning",
            access_log=False,
            proxy_headers=False,
        )
        server = uvicorn.Server(config)
        task = self.run(_spawn(server.serve(sockets=[sock])))
        deadline = time.monotonic() + 10
        while not server.started:
            if task.done() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        try:
            yield self.url
        finally:
            server.should_exit = True
            self.run(_wait(task))
            sock.close()

    async def _recorded(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._settled(scope, receive, send)
            return
        messages = []
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request" or not message.get("more_body"):
                break
        body = b"".join(m.get("body", b"") for m in messages)
        params: dict = dict(parse_qsl(scope.get("query_string", b"").decode()))
        with contextlib.suppress(ValueError):
            decoded = json.loads(body) if body else None
            if isinstance(decoded, dict):
                params.update(decoded)
        with self._lock:
            self.calls.append((scope["method"], scope["path"], params))

        async def replay() -> dict:
            return messages.pop(0) if messages else await receive()

        await self._settled(scope, replay, send)

    async def _settled(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The app, once the controller converged; a GET counts towards `pending_polls`/`rollout_polls`."""
        if scope["type"] == "http":
            await self._before(scope["method"], scope["path"])
        await self._direct(scope, receive, send)

    async def _direct(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The app, once the controller converged (the helpers' own requests: no poll counted)."""
        assert self._app is not None
        if scope["type"] == "http":
            await self._settle()
        try:
            await self._app(scope, receive, send)
        finally:
            if scope["type"] == "http" and scope["method"] not in ("GET", "HEAD"):
                self._dirty = True

    # -- convergence -----------------------------------------------------------------------------
    def touch(self) -> None:
        """Something changed behind the app's back (the registry, the engine): converge before the next answer."""
        self._dirty = True

    def settle(self) -> None:
        self.start()
        self.run(self._settle())

    async def _settle(self) -> None:
        assert self._settle_lock is not None
        async with self._settle_lock:
            if not self._dirty:
                return
            controller = self.services.controller
            previous = None
            for _ in range(100):
                self._dirty = False
                await self._tick(controller)
                while getattr(controller, "_tasks", None):  # downloads of model versions
                    await asyncio.wait(list(controller._tasks))
                snapshot = self._snapshot(controller)
                if snapshot == previous and not self._dirty:
                    return
                previous = snapshot
            raise RuntimeError("the controller did not settle in 100 ticks")

    async def _tick(self, controller: Any) -> None:
        """Wake the controller and wait for the end of a tick that started after the wake."""
        if self._ticks is None:
            self._ticks = _TickCounter(controller)
        await self._ticks.next_tick(controller)

    def _snapshot(self, controller: Any) -> str:
        seen = _published(controller)
        replicas = sorted((r.replica_id, r.state.value, r.message) for r in self.engine.replicas())
        return repr(
            (
                sorted(seen.views.items()),
                sorted(seen.endpoints.items()),
                sorted(seen.serving_endpoints.items()),
                sorted(seen.fresh),
                sorted(getattr(controller, "_memory", {}).items()),
                replicas,
            )
        )

    async def _before(self, method: str, path: str) -> None:
        await self._settle()
        if self._polls is None or method != "GET":
            return
        kind, left = self._polls
        if kind == "status":
            counted = path.endswith("/endpoints-v2/get-status")
        else:
            match = SERVING_ENDPOINT.match(path)
            endpoint = _published(self.services.controller).serving_endpoints.get(match.group(1)) if match else None
            counted = endpoint is not None and endpoint.pending is not None
        if not counted:
            return
        if left > 0:
            self._polls = (kind, left - 1)
            return
        self.release()
        await self._settle()

    def pending_polls(self, polls: int) -> None:
        """Replicas stay STARTING until the preview API's get-status answered `polls` times (then are let go)."""
        self.engine.hold = True
        self._polls = ("status", polls)

    def rollout_polls(self, polls: int) -> None:
        """Replicas stay STARTING until a serving endpoint with a pending config was read `polls` times."""
        self.engine.hold = True
        self._polls = ("rollout", polls)

    def release(self) -> None:
        self.engine.hold = False
        self._polls = None
        self.touch()

    def fail(self, model: str, version: str, message: str) -> None:
        """The version's replicas fail to load with `message` (as a loader error)."""
        self.engine.fail(model, version, message)
        self.touch()

    # -- the registry, straight into the store -----------------------------------------------------
    def register(self, model: str, versions: int) -> None:
        self.registry.register(model, versions)
        self.touch()

    def stages(self, model: str) -> dict[str, str]:
        return self.registry.stages(model)

    def set_stage(self, model: str, version: str, stage: str) -> None:
        self.registry.set_stage(model, version, stage)
        self.touch()

    def delete_version(self, model: str, version: str) -> None:
        self.registry.delete_version(model, version)
        self.touch()

    # -- the API, not recorded -------------------------------------------------------------------
    def api(self, method: str, path: str, *, json: Any = None, params: dict | None = None) -> dict:
        """Call the app as the admin, past the recording; the decoded answer (an error raises)."""

        async def call() -> httpx.Response:
            transport = httpx.ASGITransport(app=self._direct, raise_app_exceptions=False)
            headers = {"Authorization": f"Bearer {self.token}"}
            async with httpx.AsyncClient(transport=transport, base_url=HOST, headers=headers) as client:
                return await client.request(method, path, json=json, params=params)

        self.start()
        response = self.run(call())
        if response.status_code >= 400:
            raise AssertionError(f"{method} {path}: HTTP {response.status_code} {response.text}")
        return response.json() if response.content else {}

    def enable(self, model: str) -> None:
        self.api("POST", "/api/2.0/preview/mlflow/endpoints-v2/enable", json={"registered_model_name": model})

    def disable(self, model: str) -> None:
        self.api("POST", "/api/2.0/preview/mlflow/endpoints-v2/disable", json={"registered_model_name": model})

    def update_compute(self, model: str, stage: str, size: str, scale_to_zero: bool = False) -> None:
        spec = {"workload_size_id": size, "scale_to_zero_enabled": scale_to_zero}
        body = {"registered_model_name": model, "stage": stage, "desired_workload_config_spec": spec}
        self.api("PUT", "/api/2.0/preview/mlflow/endpoints-v2/update-compute-config", json=body)

    def endpoints(self) -> dict[str, dict[str, dict]]:
        """Model -> stage -> workload spec of every model with serving enabled (the fake's `endpoints`)."""
        self.settle()
        found = {}
        snapshot = _published(self.services.controller)
        for model in sorted(name for kind, name in snapshot.endpoints if kind == "model"):
            status = self.api(
                "GET", "/api/2.0/preview/mlflow/endpoints-v2/get-status", params={"registered_model_name": model}
            )
            found[model] = {
                c["stage"]: {k: c["workload_spec"][k] for k in ("workload_size_id", "scale_to_zero_enabled")}
                for c in status["endpoint_status"]["compute_config"]
            }
        return found

    def serving_endpoints(self) -> dict[str, dict]:
        """Every named serving endpoint as the backend holds it: name -> {id, config, pending, tags, acl, rate_limits}
        (configs as {config_version, served_entities, routes}; acl and rate_limits in their stored form)."""
        self.settle()
        return {
            name: {
                "id": endpoint.id,
                "config": _config(endpoint.config),
                "pending": _config(endpoint.pending),
                "tags": sorted(endpoint.tags, key=lambda t: t["key"]),
                "acl": [grant.to_stored() for grant in endpoint.grants],
                "rate_limits": [limit.to_stored() for limit in endpoint.rate_limits],
            }
            for name, endpoint in sorted(_published(self.services.controller).serving_endpoints.items())
        }

    def rotate_token(self) -> None:
        """Revoke the admin token the clients hold: the backend rejects it from now on."""
        from rtserve.server.store import repo

        sessions = self.services.sessions
        with sessions() as session:
            ids = [row.id for row in repo.list_active_tokens_named(session=session, name="admin")]
        for token_id in ids:
            auth.revoke_token(sessions, token_id)
        self.services.verifier.invalidate()


class _TickCounter:
    """Counts the controller's ticks (wrapping its `tick`), so a wait can ask for a tick begun after a change."""

    def __init__(self, controller: Any) -> None:
        self.started = 0
        self.done = 0
        self.changed = asyncio.Event()
        original = controller.tick

        async def counted() -> None:
            self.started += 1
            number = self.started
            try:
                await original()
            finally:
                self.done = number
                self.changed.set()

        controller.tick = counted

    async def next_tick(self, controller: Any) -> None:
        wanted = self.started + 1
        controller.wake()
        while self.done < wanted:
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), 30)


def _published(controller: Any) -> Any:
    """What the controller last published (its `snapshot`, or its own fields where it has none)."""
    return getattr(controller, "snapshot", controller)


def _config(config: Any) -> dict | None:
    """A config in its stored form ({config_version, served_entities, routes}), as the store holds it."""
    return None if config is None else config.to_stored()


class _Bridge(httpx.BaseTransport):
    """A synchronous httpx transport onto an ASGI app running on the shared loop."""

    def __init__(self, server: AppServer, app: Callable) -> None:
        self._server = server
        self._asgi = httpx.ASGITransport(app=app, raise_app_exceptions=False)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self._server.start()
        body = request.read()

        async def send() -> tuple[int, list, bytes]:
            forwarded = httpx.Request(request.method, request.url, headers=request.headers, content=body)
            response = await self._asgi.handle_async_request(forwarded)
            content = b"".join([chunk async for chunk in response.stream])  # type: ignore[union-attr]
            return response.status_code, response.headers.multi_items(), content

        status, headers, content = self._server.run(send())
        return httpx.Response(status, headers=headers, content=content, request=request)


async def _spawn(coro: Awaitable[None]) -> asyncio.Task:
    return asyncio.ensure_future(coro)


async def _wait(task: asyncio.Task) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(task, 10)


# -- fixtures' building block ----------------------------------------------------------------------
@contextlib.contextmanager
def running_app(
    root: Path,
    models: dict[str, int] | None = None,
    *,
    engine: FakeEngine | None = None,
    serve: bool = False,
    settings: dict[str, Any] | None = None,
) -> Iterator[AppServer]:
    """A started app whose registry holds exactly `models` (name -> number of versions); served over
    HTTP too if `serve`; `settings` change the app's own (`{"engine": "ray"}`: the fake engine counts as
    Ray). Endpoint ids are `id-<name>`, so tests can name them before they exist."""
    server = AppServer(root, engine)
    server.settings = server.settings.model_copy(update=settings or {})
    server.registry.reset(models or {})
    with _readable_ids():
        try:
            if serve:
                with server.serve():
                    yield server
            else:
                yield server  # started by its first use
        finally:
            server.stop()


@contextlib.contextmanager
def _readable_ids() -> Iterator[None]:
    """Serving endpoints get the id `id-<name>` instead of a random one while the app runs."""
    from rtserve.server.store.models import ServingEndpoint

    def readable(mapper: Any, connection: Any, target: ServingEndpoint) -> None:
        target.id = f"id-{target.name}"

    event.listen(ServingEndpoint, "before_insert", readable)
    try:
        yield
    finally:
        event.remove(ServingEndpoint, "before_insert", readable)
