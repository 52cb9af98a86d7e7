"""The reconciler: a pure function from desired and observed state to actions.

No I/O and no clock reads here: `now` comes in, actions and the new per-version memory go out.
The controller (controller.py) gathers the inputs and carries out the actions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from rtserve.server.control import stages
from rtserve.server.control.autoscaler import ScalingContext, ScalingState, decide
from rtserve.server.control.stages import RegisteredVersion
from rtserve.server.control.traffic import VersionTraffic
from rtserve.server.control.workloads import Compute, ReplicaSettings, combine, replica_range
from rtserve.server.engines.base import ReplicaObservation, ReplicaState

LIVE_STATES = (ReplicaState.STARTING, ReplicaState.READY)
GONE_STATES = (ReplicaState.FAILED, ReplicaState.CRASHED, ReplicaState.STOPPED)
MAX_BACKOFF_SECONDS = 60.0


class VersionState:
    PENDING = "PENDING"
    READY = "READY"
    FAILED = "FAILED"


@dataclass(frozen=True)
class EndpointDesired:
    model_name: str
    compute: dict[str, Compute]  # by stage: the preview API's compute config
    versions: tuple[RegisteredVersion, ...]


@dataclass(frozen=True)
class VersionMemory:
    """What the control plane remembers about one version between ticks."""

    model_uri: str | None = None  # local copy of the artifacts, once downloaded (and its environment ready)
    python: str | None = None  # the interpreter of the model's own environment; None: the server's
    preparing: bool = False
    preparing_message: str = ""  # what the preparation is doing, while it takes long (an environment build)
    failures: int = 0  # consecutive failed attempts to download or load
    retry_at: float = 0.0
    last_error: str = ""
    applied: Compute | None = None  # the compute config the running replicas satisfy
    served_since: float = 0.0  # when the version started being served (idle time counts from here)
    scaling: ScalingState = ScalingState()


@dataclass(frozen=True)
class Prepare:
    model_name: str
    version: str


@dataclass(frozen=True)
class StartReplica:
    model_name: str
    version: str
    model_uri: str
    reason: str = "starting"
    settings: ReplicaSettings = ReplicaSettings()
    python: str | None = None  # the model environment's interpreter; None: the server's
    slots: int = 1  # the version's target replicas: a fenced start takes one of this many slots


@dataclass(frozen=True)
class StopReplica:
    replica_id: str


@dataclass(frozen=True)
class ForgetReplica:
    replica_id: str


@dataclass(frozen=True)
class PendingConfig:
    """A named endpoint's config update being rolled out: what promotes it when every version is ready."""

    endpoint: str
    stored: str  # the pending config as stored: promoted only if it is still exactly this
    versions: tuple[tuple[str, str], ...]  # (model, version) of each served entity


@dataclass(frozen=True)
class PromoteConfig:
    """Make an endpoint's pending config its config (every version it serves is READY)."""

    endpoint: str
    stored: str


Action = Prepare | StartReplica | StopReplica | ForgetReplica | PromoteConfig


@dataclass(frozen=True)
class VersionView:
    """Observed status of one served version, as the status APIs report it."""

    model_name: str
    version: str
    state: str
    message: str
    stage: str | None
    compute: Compute
    compute_pending: bool  # the running replicas do not satisfy `compute` yet
    target_replicas: int
    ready_replicas: int
    # Served through the preview API (a stage, an alias, or a route still pointing at it); False for a
    # version only named serving endpoints serve, which the preview API's status leaves out.
    staged: bool = True
    # Ready replicas exist, but none runs the current batching, environment_vars or placement yet: an endpoint's
    # pending config that changed them waits (it must not be promoted on the old replicas).
    awaiting_current: bool = False


@dataclass
class Plan:
    actions: list[Action] = field(default_factory=list)
    routes: dict[str, dict[str, str]] = field(default_factory=dict)  # model -> route -> version
    views: dict[tuple[str, str], VersionView] = field(default_factory=dict)
    memory: dict[tuple[str, str], VersionMemory] = field(default_factory=dict)


def backoff_seconds(failures: int) -> float:
    return min(MAX_BACKOFF_SECONDS, 2.0 ** max(0, failures - 1))


@dataclass(frozen=True)
class Tuning:
    replica_concurrency: int = 4  # concurrent requests one replica is sized for
    idle_seconds: float = 1800.0  # scale-to-zero idle period
    upscale_delay: float = 1.0
    downscale_delay: float = 30.0


@dataclass(frozen=True)
class Observed:
    replicas: list[ReplicaObservation] = field(default_factory=list)
    traffic: Mapping[tuple[str, str], VersionTraffic] = field(default_factory=dict)
    # The settings each replica this controller started runs with (a change needs new replicas).
    replica_settings: Mapping[str, ReplicaSettings] = field(default_factory=dict)
    # The batching a replica it did not start (adopted) reports; the rest of an adopted replica's settings
    # count as current, since nothing tells.
    reported_batching: Mapping[str, tuple[int, float]] = field(default_factory=dict)

    def runs_current(self, replica_id: str, config: Compute) -> bool:
        settings = self.replica_settings.get(replica_id)
        if settings is not None:
            return settings == config.replica_settings
        return self.reported_batching.get(replica_id, (1, 0.0)) == config.batching


def reconcile(
    desired: list[EndpointDesired],
    observed: Observed,
    memory: dict[tuple[str, str], VersionMemory],
    previous_routes: dict[str, dict[str, str]],
    now: float,
    tuning: Tuning = Tuning(),
    pinned: Mapping[tuple[str, str], Compute] | None = None,
    pending: Sequence[PendingConfig] = (),
) -> Plan:
    """`desired` are the registered models served by stage (seed 000); `pinned` are versions that
    named serving endpoints (seed 002) serve whatever their stage, with their compute config;
    `pending` are the endpoints' config updates, each promoted once all its versions are READY."""
    plan = Plan()
    by_version: dict[tuple[str, str], list[ReplicaObservation]] = {}
    for replica in observed.replicas:
        by_version.setdefault((replica.model_name, replica.version), []).append(replica)

    wanted: dict[tuple[str, str], tuple[str | None, Compute]] = {}
    staged: set[tuple[str, str]] = set()
    for endpoint in desired:
        model = endpoint.model_name
        ready = {
            version
            for (name, version), group in by_version.items()
            if name == model and any(r.state is ReplicaState.READY for r in group)
        }
        routes = stages.choose_routes(stages.route_candidates(endpoint.versions), previous_routes.get(model, {}), ready)
        plan.routes[model] = routes
        for version, stage in stages.served_versions(endpoint.versions, routes).items():
            wanted[(model, version)] = (stage, endpoint.compute.get(stage or "", Compute()))
            staged.add((model, version))
    for key, config in (pinned or {}).items():
        stage, current = wanted.get(key, (None, None))
        wanted[key] = (stage, config if current is None else combine(current, config))

    for key, (stage, config) in wanted.items():
        _plan_version(
            plan, key, stage, config, by_version.get(key, []), memory.get(key, VersionMemory()), now, observed, tuning
        )
        if key not in staged:
            plan.views[key] = replace(plan.views[key], staged=False)

    for key, group in by_version.items():
        if key not in wanted:
            for replica in group:
                if replica.state in LIVE_STATES:
                    plan.actions.append(StopReplica(replica.replica_id))
                elif replica.state in GONE_STATES:
                    plan.actions.append(ForgetReplica(replica.replica_id))
    for update in pending:
        views = [plan.views.get(key) for key in update.versions]
        if all(view is not None and view.state == VersionState.READY and not view.awaiting_current for view in views):
            plan.actions.append(PromoteConfig(update.endpoint, update.stored))
    return plan


def _plan_version(
    plan: Plan,
    key: tuple[str, str],
    stage: str | None,
    config: Compute,
    group: list[ReplicaObservation],
    memory: VersionMemory,
    now: float,
    observed: Observed,
    tuning: Tuning,
) -> None:
    model, version = key
    if not memory.served_since:
        memory = replace(memory, served_since=now)
    live = [r for r in group if r.state in LIVE_STATES]
    current = [r for r in live if observed.runs_current(r.replica_id, config)]
    outdated = [r for r in live if r not in current]
    ready = [r for r in live if r.state is ReplicaState.READY]

    for replica in group:
        if replica.state in GONE_STATES:
            plan.actions.append(ForgetReplica(replica.replica_id))
    crashed = any(r.state is ReplicaState.CRASHED for r in group)
    load_failures = [r for r in group if r.state is ReplicaState.FAILED]
    if load_failures:
        memory = replace(
            memory,
            failures=memory.failures + 1,
            retry_at=now + backoff_seconds(memory.failures + 1),
            last_error=load_failures[-1].message,
        )
    if ready and memory.failures:
        memory = replace(memory, failures=0, last_error="")

    traffic = observed.traffic.get(key, VersionTraffic())
    low, high = replica_range(config.concurrency, False, tuning.replica_concurrency)
    target, scaling = decide(
        ScalingContext(
            now=now,
            current=len(current),
            in_flight=traffic.in_flight,
            low=low,
            high=high,
            per_replica=tuning.replica_concurrency,
            scale_to_zero=config.scale_to_zero_enabled,
            last_request_at=max(traffic.last_request_at, memory.served_since),
            idle_seconds=tuning.idle_seconds,
            upscale_delay=tuning.upscale_delay,
            downscale_delay=tuning.downscale_delay,
        ),
        memory.scaling,
    )
    memory = replace(memory, scaling=scaling)

    waiting_to_retry = memory.failures > 0 and now < memory.retry_at
    if memory.model_uri is None:
        if not memory.preparing and not waiting_to_retry and target > 0:
            plan.actions.append(Prepare(model, version))
            memory = replace(memory, preparing=True)
    elif len(current) < target and not (waiting_to_retry and not ready):
        reason = _start_reason(crashed, len(current), len(live), traffic.in_flight)
        plan.actions.extend(
            StartReplica(
                model,
                version,
                memory.model_uri,
                reason,
                config.replica_settings,
                python=memory.python,
                slots=target,
            )
            for _ in range(target - len(current))
        )
    elif len(current) > target:
        # Stop replicas still starting before those already serving, then the least busy.
        surplus = sorted(current, key=lambda r: (r.state is ReplicaState.READY, r.in_flight))[: len(current) - target]
        plan.actions.extend(StopReplica(r.replica_id) for r in surplus)
    current_ready = [r for r in current if r.state is ReplicaState.READY]
    if outdated and len(current_ready) >= target:
        # Replicas with old batching settings or variables go once the new ones can carry the load (rolling update).
        plan.actions.extend(StopReplica(r.replica_id) for r in outdated)

    if len(current_ready) >= target and not outdated and memory.applied != config:
        memory = replace(memory, applied=config)
    plan.memory[key] = memory

    if ready:
        state, message = VersionState.READY, f"Ready: {len(ready)} of {target} replicas serving"
    elif memory.failures:
        state, message = VersionState.FAILED, memory.last_error
    elif target == 0:  # only scale-to-zero asks for no replicas
        state, message = VersionState.READY, "Scaled to zero; the next request starts a replica"
    elif memory.model_uri is None:
        state, message = VersionState.PENDING, memory.preparing_message or "Downloading the model's artifacts"
    else:
        state, message = VersionState.PENDING, "Starting replicas; the model is loading"
    plan.views[key] = VersionView(
        model_name=model,
        version=version,
        state=state,
        message=message,
        stage=stage,
        compute=config,
        compute_pending=memory.applied != config,
        target_replicas=target,
        ready_replicas=len(ready),
        awaiting_current=bool(ready) and not current_ready and target > 0,
    )


def _start_reason(crashed: bool, current: int, live: int, in_flight: int) -> str:
    if crashed:
        return "replacing a crashed replica"
    if current == 0 and live == 0 and in_flight > 0:
        return "cold start for a waiting request"
    if current == 0:
        return "starting"
    return "scaling up"
