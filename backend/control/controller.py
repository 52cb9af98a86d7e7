"""The controller loop: gathers desired and observed state, calls the reconciler, applies its actions.

All decisions live in reconciler.reconcile; this module only does I/O (database, registry, engine)
and records an event for every change of observed state it sees.

Every instance sharing a database runs a controller: each one observes, reconciles and publishes
its snapshot at every tick (so its gateway routes), but only the leader (control/leadership.py)
acts on what is shared: it starts and stops replicas, promotes configs and records the events. A
follower still prepares the artifacts and forgets dead replicas, which only concern itself, so it
can take over at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from rtserve.server import paths
from rtserve.server.control import email_notifications, events, instances, serving_endpoints
from rtserve.server.control.endpoint import Endpoint, EndpointKind, model_endpoint
from rtserve.server.control.environment_vars import needs_fresh_interpreter, resolve
from rtserve.server.control.leadership import Leadership
from rtserve.server.control.reconciler import (
    EndpointDesired,
    ForgetReplica,
    Observed,
    Plan,
    Prepare,
    PromoteConfig,
    StartReplica,
    StopReplica,
    Tuning,
    VersionMemory,
    VersionState,
    VersionView,
    backoff_seconds,
    reconcile,
)
from rtserve.server.control.serving_config import EndpointConfig
from rtserve.server.control.serving_endpoints import ServingEndpointState
from rtserve.server.control.snapshot import EndpointKey, Snapshot
from rtserve.server.control.stages import RegisteredVersion
from rtserve.server.control.traffic import Traffic, VersionTraffic
from rtserve.server.control.workloads import Compute, ReplicaSettings
from rtserve.server.engines.base import Engine, ReplicaSpec, ReplicaState, SlotTaken
from rtserve.server.environments import preparation as environment_preparation
from rtserve.server.environments.builder import Builder, BuildFailed
from rtserve.server.environments.preparation import BUILDING_MESSAGE
from rtserve.server.errors import ApiError
from rtserve.server.mailer import Mailer
from rtserve.server.registry import Registry
from rtserve.server.secret_store import MissingSecret, SecretStore, open_store
from rtserve.server.settings import Settings
from rtserve.server.store import repo
from rtserve.server.store.models import Event

log = logging.getLogger("rtserve.controller")
VersionKey = tuple[str, str]


class Controller:
    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        registry: Registry,
        engine: Engine,
        clock: Callable[[], float] = time.time,
        leadership: Leadership | None = None,
        mailer: Mailer | None = None,
        secrets: SecretStore | None = None,
    ) -> None:
        self.settings = settings
        self._secrets = secrets  # None: opened at the first secret reference a replica needs
        self.mailer = mailer  # None: no SMTP server is set, notifications are only recorded as events
        self.leadership = leadership or Leadership.alone()
        self.instance_id = uuid.uuid4().hex
        self.started_at = clock()
        self.sessions = sessions
        self.registry = registry
        self.engine = engine
        self.clock = clock
        # The controller's working state; readers see it only through `snapshot`, published each tick.
        self._routes: dict[str, dict[str, str]] = {}
        self._views: dict[VersionKey, VersionView] = {}
        self._enabled: set[str] = set()
        self._serving_endpoints: dict[str, ServingEndpointState] = {}  # serving endpoints (GA API) as stored, by name
        self.snapshot = Snapshot()
        self._memory: dict[VersionKey, VersionMemory] = {}
        self._versions: dict[str, tuple[RegisteredVersion, ...]] = {}
        self._fetched_at: dict[str, float] = {}
        self._replica_states: dict[str, ReplicaState] = {}
        self._replica_settings: dict[str, ReplicaSettings] = {}  # of the replicas this controller started
        self._held_slot_groups: set[str] = set()  # whose starts found every slot held, since their last start
        self._events: list[Event] = []  # noted during a tick, written at its end
        self._failures_told: set[tuple[str, str]] = set()  # (endpoint, its pending config) notified as failed
        self.traffic = Traffic(clock)
        self.tuning = Tuning(
            settings.replica_concurrency,
            settings.scale_to_zero_idle_seconds,
            settings.upscale_delay_seconds,
            settings.downscale_delay_seconds,
        )
        self._wake = asyncio.Event()
        # Set once every enabled model's versions were read: until then routes are unknown, not absent.
        self.synced = asyncio.Event()
        self._ticked = asyncio.Condition()
        self._tasks: set[asyncio.Task] = set()
        self._task: asyncio.Task | None = None
        # Model environments are built here, two at a time (one per key: backend/environments/builder.py).
        self._build_threads = ThreadPoolExecutor(max_workers=2, thread_name_prefix="environment-build")
        self._builder: Builder | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="rtserve-controller")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for task in list(self._tasks):
            task.cancel()
        self._build_threads.shutdown(wait=False, cancel_futures=True)
        if self.leadership.shared:
            with contextlib.suppress(Exception):  # its row goes stale anyway
                await asyncio.to_thread(instances.leave, self.sessions, self.instance_id)

    def wake(self, model_name: str | None = None) -> None:
        """Re-read the registry for `model_name` (or every model) and reconcile now."""
        if model_name is None:
            self._fetched_at.clear()
        else:
            self._fetched_at.pop(model_name, None)
        self._publish()  # the model is stale from now on, for every reader
        self._wake.set()

    def nudge(self) -> None:
        """Reconcile now without re-reading the registry (a request is waiting for a replica)."""
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:  # the loop must survive anything one tick runs into
                log.exception("reconcile tick failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.reconcile_interval_seconds)
            self._wake.clear()

    # -- one tick --------------------------------------------------------------------------------
    async def tick(self) -> None:
        """One round: read desired state, reconcile, act; the store is read and written off the event loop,
        and the tick's events are written together, in one transaction."""
        leading = self.leadership.leading
        self.engine.set_leading(leading)
        desired = await self._desired()
        await self.refresh_serving_endpoints()
        pinned = serving_endpoints.pinned_versions(self._serving_endpoints.values())
        pending = serving_endpoints.pending_configs(self._serving_endpoints.values())
        replicas = self.engine.replicas()
        # Replicas this controller did not start (adopted by the engine) count with the batching they report.
        reported = {r.replica_id: r.batching for r in replicas if r.batching is not None}
        observed = Observed(replicas, await self._traffic(), self._replica_settings, reported)
        plan = reconcile(desired, observed, self._memory, self._routes, self.clock(), self.tuning, pinned, pending)
        self._record_changes(plan)
        self._routes, self._views, self._memory = plan.routes, plan.views, plan.memory
        self._publish()
        if len(desired) == len(self._enabled):
            self.synced.set()
        # Checked on the database just before acting: a leader that lost its lock must not act.
        acting = leading and await self.leadership.confirm()
        for action in plan.actions:
            await self._apply(action, acting)
        if acting:
            self._notify_failed_updates()
        await self._write_events(acting)
        async with self._ticked:
            self._ticked.notify_all()

    async def refresh_serving_endpoints(self) -> None:
        """Re-read the named serving endpoints from the store (after every change through the API)."""
        self._serving_endpoints = await asyncio.to_thread(serving_endpoints.load_all, self.sessions)
        self._publish()

    def _publish(self) -> None:
        """Compile every endpoint of both APIs into the one internal model and replace the snapshot
        readers see, in one assignment."""
        served: dict[str, list[tuple[str, Compute]]] = {}
        for (model, version), view in self._views.items():
            served.setdefault(model, []).append((version, view.compute))
        endpoints: dict[EndpointKey, Endpoint] = {
            (EndpointKind.MODEL, model): model_endpoint(model, self._routes.get(model, {}), served.get(model, ()))
            for model in self._enabled
        }
        for state in self._serving_endpoints.values():
            endpoints[(EndpointKind.SERVING, state.name)] = state.compiled()
        self.snapshot = Snapshot(
            endpoints=MappingProxyType(endpoints),
            views=MappingProxyType(dict(self._views)),
            serving_endpoints=MappingProxyType(dict(self._serving_endpoints)),
            fresh=frozenset(self._fetched_at),
        )

    async def _traffic(self) -> dict[VersionKey, VersionTraffic]:
        """Requests in flight and the last request per version: this instance's, or every instance's when shared."""
        own = self.traffic.snapshot()
        if not self.leadership.shared:
            return own
        stale_after = 5 * self.settings.leader_heartbeat_seconds
        try:
            return await asyncio.to_thread(
                instances.exchange, self.sessions, self.instance_id, self.started_at, own, self.clock(), stale_after
            )
        except Exception:  # the database is out of reach: decide on what this instance sees
            log.exception("could not share this instance's traffic")
            return own

    async def _write_events(self, acting: bool) -> None:
        made, self._events = self._events, []
        if not acting:
            return  # the leader records them: once
        try:
            await asyncio.to_thread(events.record_all, self.sessions, made)
        except Exception:  # events are history: losing one tick's must not stop reconciling
            log.exception("could not record %d events", len(made))

    async def _promote(self, action: PromoteConfig) -> None:
        """Write the promotion (conditional on the pending config being the one reconciled), then re-read."""
        endpoint = self._serving_endpoints.get(action.endpoint)
        if endpoint is None or endpoint.pending is None:
            return
        now_ms = int(self.clock() * 1000)
        if not await asyncio.to_thread(serving_endpoints.promote, self.sessions, endpoint, now_ms, action.stored):
            return  # changed or deleted since it was read: the next tick sees what is there now
        for entity in endpoint.pending.served_entities:
            self._event(
                entity.entity_name,
                events.MODEL_SERVING_EVENT,
                f"Serving endpoint '{endpoint.name}' now serves config version "
                f"{endpoint.pending.config_version} (served entity '{entity.name}')",
                entity.entity_version,
            )
        self._notify_update(endpoint, endpoint.pending, failure=None)
        await self.refresh_serving_endpoints()
        self._wake.set()  # versions only the old config served can stop now

    # -- e-mail notifications (only the leader's: it alone promotes, and sees a failure once) -----------
    def _notify_failed_updates(self) -> None:
        """Tell each endpoint's on_update_failure addresses once per pending config that failed."""
        pending = {(e.name, e.stored_pending): e for e in self._serving_endpoints.values() if e.stored_pending}
        for key, endpoint in pending.items():
            if key in self._failures_told or endpoint.pending is None:
                continue
            if serving_endpoints.pending_failed(endpoint, self._views):
                self._failures_told.add(key)
                reasons = [
                    f"served entity '{e.name}': {view.message}"
                    for e in endpoint.pending.served_entities
                    if (view := self._views.get(e.key)) is not None and view.state == VersionState.FAILED
                ]
                self._notify_update(endpoint, endpoint.pending, failure="; ".join(reasons) or "a version failed")
        self._failures_told &= pending.keys()  # forget configs promoted, replaced or deleted

    def _notify_update(self, endpoint: ServingEndpointState, config: EndpointConfig, failure: str | None) -> None:
        notifications = endpoint.email_notifications
        recipients = notifications.on_update_failure if failure is not None else notifications.on_update_success
        if not recipients:
            return
        subject = email_notifications.update_message(endpoint.name, config.config_version, failure)
        if self.mailer is not None:
            self.mailer.send(recipients, subject, email_notifications.update_body(endpoint.name, config, failure))
            return
        for entity in config.served_entities:
            self._event(
                entity.entity_name,
                events.MODEL_SERVING_EVENT,
                f"Would e-mail {', '.join(recipients)} (no SMTP server is set): {subject}",
                entity.entity_version,
            )

    def _read_desired_rows(self) -> tuple[list, list]:
        with self.sessions() as session:
            return repo.list_model_endpoints(session=session), repo.all_compute_configs(session=session)

    async def _desired(self) -> list[EndpointDesired]:
        endpoints, configs = await asyncio.to_thread(self._read_desired_rows)
        self._enabled = {e.registered_model_name for e in endpoints}
        for stale in set(self._versions) - self._enabled:
            del self._versions[stale]
        now = self.clock()
        for name in self._enabled:
            if now - self._fetched_at.get(name, 0.0) >= self.settings.registry_poll_seconds:
                try:
                    self._versions[name] = await asyncio.to_thread(self.registry.versions, name)
                    self._fetched_at[name] = now
                except ApiError as exc:
                    # Keep serving what we know; a registry outage must not stop anything.
                    log.warning("cannot read versions of %s: %s", name, exc.message)
        by_model: dict[str, dict[str, Compute]] = {}
        for config in configs:
            by_model.setdefault(config.registered_model_name, {})[config.stage] = Compute.of_stage(config)
        return [
            EndpointDesired(name, by_model.get(name, {}), self._versions.get(name, ()))
            for name in sorted(self._enabled)
            if name in self._versions
        ]

    async def _apply(self, action: object, acting: bool) -> None:
        """Carry out one action; one that changes shared state (replicas, configs) only while `acting`."""
        match action:
            case Prepare(model_name=model, version=version):
                self._spawn(self._prepare(model, version))
            case ForgetReplica(replica_id=replica_id):
                self.engine.forget(replica_id)
                self._replica_states.pop(replica_id, None)
                self._replica_settings.pop(replica_id, None)
            case _ if not acting:
                return
            case StartReplica():
                await self._start_replica(action)
            case StopReplica(replica_id=replica_id):
                self._spawn(self.engine.stop_replica(replica_id))
            case PromoteConfig():
                await self._promote(action)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _prepare(self, model: str, version: str) -> None:
        key = (model, version)
        try:
            uri = await asyncio.to_thread(self.registry.download, model, version, self.settings.data_dir / "models")
        except Exception as exc:  # noqa: BLE001 - any failure to fetch artifacts fails the version, not the loop
            message = exc.message if isinstance(exc, ApiError) else f"{type(exc).__name__}: {exc}"
            self._prepare_failed(key, f"Could not download the model's artifacts: {message}")
            return
        try:
            python = await self._prepare_environment(model, version, uri)
        except Exception as exc:  # noqa: BLE001 - a failed build fails this version only
            message = str(exc) if isinstance(exc, BuildFailed) else f"{type(exc).__name__}: {exc}"
            self._prepare_failed(key, f"Could not build the model's environment: {message}")
            return
        memory = self._memory.get(key, VersionMemory())
        self._memory[key] = replace(memory, preparing=False, preparing_message="", model_uri=uri, python=python)
        self._wake.set()

    async def _prepare_environment(self, model: str, version: str, model_uri: str) -> str | None:
        """The interpreter of the environment the version runs in (None: the server's), built if needed
        on the build threads, never on the event loop or the threads the store is read on."""
        # A served entity may override the server's policy; the Ray engine's actors run the server's environment.
        key = (model, version)
        policy = serving_endpoints.environment_policy(self._serving_endpoints.values(), key)
        policy = (policy or self.settings.environment_policy) if self.settings.engine == "local" else "local"
        if self._builder is None:
            self._builder = Builder(
                self.settings.data_dir / "envs", timeout=self.settings.environment_build_timeout_seconds
            )
        self._memory[key] = replace(self._memory.get(key, VersionMemory()), preparing_message=BUILDING_MESSAGE)
        self._wake.set()
        log_dir = paths.build_dir(self.settings.data_dir, model, version)
        return await asyncio.get_running_loop().run_in_executor(
            self._build_threads, environment_preparation.prepare, policy, Path(model_uri), log_dir, self._builder
        )

    def _prepare_failed(self, key: VersionKey, error: str) -> None:
        memory = self._memory.get(key, VersionMemory())
        failures = memory.failures + 1
        self._memory[key] = replace(
            memory,
            preparing=False,
            preparing_message="",
            failures=failures,
            retry_at=self.clock() + backoff_seconds(failures),
            last_error=error,
        )
        self._wake.set()

    async def _start_replica(self, action: StartReplica) -> None:
        model, version = action.model_name, action.version
        replica_id = f"{_short(model)}-{version}-{uuid.uuid4().hex[:6]}"
        log_dir = paths.log_dir(self.settings.data_dir, model, version)
        log_dir.mkdir(parents=True, exist_ok=True)
        settings = action.settings
        batch_size, batch_wait = settings.batching
        try:
            # Resolved here, at the start, into the spec only: never stored, logged or published.
            env = await asyncio.to_thread(resolve, settings.environment_vars, self._secret_value)
        except (MissingSecret, ValueError) as exc:
            self._fail_start(model, version, f"Cannot set the served entity's environment_vars: {exc}")
            return
        spec = ReplicaSpec(
            replica_id,
            model,
            version,
            action.model_uri,
            str(log_dir / f"{replica_id}.log"),
            env=env,
            fresh_interpreter=needs_fresh_interpreter(settings.environment_vars),
            max_batch_size=batch_size,
            max_batch_wait_ms=batch_wait,
            python=action.python,
            node_labels=dict(settings.placement.node_labels) if settings.placement else {},
            resources=dict(settings.placement.resources) if settings.placement else {},
            slot_group=slot_group(action),
            slots=action.slots,
        )
        try:
            await self.engine.start_replica(spec)
        except SlotTaken as taken:  # another leader started it a moment ago: its replica is found and adopted
            # Said once: a stale claim holds a slot for up to 30 s, and the start is tried again every tick.
            (log.debug if spec.slot_group in self._held_slot_groups else log.info)("%s", taken)
            self._held_slot_groups.add(spec.slot_group)
            return
        self._held_slot_groups.discard(spec.slot_group)
        self._replica_settings[replica_id] = settings
        self._event(model, events.CONTAINER_EVENT, f"Replica {replica_id} started ({action.reason})", version)

    def _secret_value(self, scope: str, key: str) -> str:
        if self._secrets is None:
            self._secrets = open_store(self.sessions, self.settings.secrets_key_path)
        return self._secrets.value(scope, key)

    def _fail_start(self, model: str, version: str, message: str) -> None:
        """The version FAILED without a replica (like a failed download): retried with backoff."""
        key = (model, version)
        memory = self._memory.get(key, VersionMemory())
        failures = memory.failures + 1
        self._memory[key] = replace(
            memory, failures=failures, retry_at=self.clock() + backoff_seconds(failures), last_error=message
        )
        self._wake.set()

    # -- events ----------------------------------------------------------------------------------
    def _record_changes(self, plan: Plan) -> None:
        for replica in self.engine.replicas():
            last_state = self._replica_states.get(replica.replica_id)
            if last_state is replica.state:
                continue
            self._replica_states[replica.replica_id] = replica.state
            message = events.replica_message(replica, last_state)
            if message:
                self._event(replica.model_name, events.CONTAINER_EVENT, message, replica.version)
        for key, view in plan.views.items():
            before = self._views.get(key)
            if before is None or before.state != view.state:
                self._event(
                    key[0], events.MODEL_VERSION_SERVING_EVENT, events.version_message(view), key[1], view.stage
                )
            if before is not None and before.target_replicas != view.target_replicas:
                self._event(
                    key[0], events.MODEL_VERSION_SERVING_EVENT, events.scaling_message(before, view), key[1], view.stage
                )
            if before is not None and before.compute_pending and not view.compute_pending:
                self._event(
                    key[0],
                    events.MODEL_VERSION_SERVING_EVENT,
                    f"Compute config applied to version {key[1]}: {view.compute.workload_size_id}",
                    key[1],
                    view.stage,
                )
        for key in self._views.keys() - plan.views.keys():
            self._event(
                key[0],
                events.MODEL_VERSION_SERVING_EVENT,
                f"Version {key[1]} stopped: no stage, alias or serving endpoint serves it any more",
                key[1],
            )
        for model, routes in plan.routes.items():
            previous = self._routes.get(model, {})
            for route, version in routes.items():
                if previous.get(route) != version:
                    was = f" (was version {previous[route]})" if route in previous else ""
                    self._event(
                        model, events.MODEL_SERVING_EVENT, f"{route} now serves version {version}{was}", version, route
                    )

    def _event(self, model: str, kind: str, message: str, version: str | None = None, stage: str | None = None) -> None:
        """Note an event; the tick writes its events together at its end (`_write_events`).

        Only the leader's: a follower sees the same changes, which the leader records once.
        """
        if not self.leadership.leading:
            return
        self._events.append(events.new(model, kind, message, version, stage, self.clock()))

    # -- waiting for the controller ---------------------------------------------------------------
    async def wait_tick(self, timeout: float) -> None:
        """Return after the next reconcile tick, or after `timeout` seconds."""
        async with self._ticked:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ticked.wait(), max(0.0, timeout))

    async def observe(self, done: Callable[[Snapshot], bool], timeout: float) -> bool:
        """Wait until the published snapshot satisfies `done` (at most `timeout` s); whether it does.

        A change made through the API waits for this before it answers, so the caller's next request
        (a score, a status, the page rendered next) sees the change rather than the state before it.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not done(self.snapshot):
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            self._wake.set()
            await self.wait_tick(remaining)
        return True


def slot_group(action: StartReplica) -> str:
    """`<model>/<version>/<digest>`: the slots of a version for one config (its replica settings), so that
    the replicas of a new config start beside the old ones in a rollout."""
    return f"{action.model_name}/{action.version}/{action.settings.digest()}"


def _short(model: str) -> str:
    cleaned = "".join(ch if ch.isalnum() else "-" for ch in model.lower()).strip("-")
    return cleaned[:24] or "model"
