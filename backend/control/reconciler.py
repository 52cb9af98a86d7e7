"""The reconciler: a pure function from desired and observed state to actions.

No I/O and no clock reads here: `now` comes in, actions and the new per-version memory go out.
The controller (controller.py) gathers the inputs and carries out the actions.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from backend.control import stages
from backend.control.stages import RegisteredVersion
from backend.control.workloads import DEFAULT_WORKLOAD_SIZE, replica_range
from backend.engines.base import ReplicaObservation, ReplicaState

LIVE_STATES = (ReplicaState.STARTING, ReplicaState.READY)
GONE_STATES = (ReplicaState.FAILED, ReplicaState.CRASHED, ReplicaState.STOPPED)
MAX_BACKOFF_SECONDS = 60.0


class VersionState:
    PENDING = "PENDING"
    READY = "READY"
    FAILED = "FAILED"


@dataclass(frozen=True)
class StageConfig:
    workload_size_id: str = DEFAULT_WORKLOAD_SIZE
    scale_to_zero_enabled: bool = False
    generation: int = 0


@dataclass(frozen=True)
class EndpointDesired:
    model_name: str
    configs: dict[str, StageConfig]
    versions: tuple[RegisteredVersion, ...]


@dataclass(frozen=True)
class VersionMemory:
    """What the control plane remembers about one version between ticks."""

    model_uri: str | None = None  # local copy of the artifacts, once downloaded
    preparing: bool = False
    failures: int = 0  # consecutive failed attempts to download or load
    retry_at: float = 0.0
    last_error: str = ""
    applied: StageConfig | None = None  # the compute config the running replicas satisfy


@dataclass(frozen=True)
class Prepare:
    model_name: str
    version: str


@dataclass(frozen=True)
class StartReplica:
    model_name: str
    version: str
    model_uri: str


@dataclass(frozen=True)
class StopReplica:
    replica_id: str


@dataclass(frozen=True)
class ForgetReplica:
    replica_id: str


Action = Prepare | StartReplica | StopReplica | ForgetReplica


@dataclass(frozen=True)
class VersionView:
    """Observed status of one served version, as the status APIs report it."""

    model_name: str
    version: str
    state: str
    message: str
    stage: str | None
    config: StageConfig
    config_pending: bool
    target_replicas: int
    ready_replicas: int


@dataclass
class Plan:
    actions: list[Action] = field(default_factory=list)
    routes: dict[str, dict[str, str]] = field(default_factory=dict)  # model -> route -> version
    views: dict[tuple[str, str], VersionView] = field(default_factory=dict)
    memory: dict[tuple[str, str], VersionMemory] = field(default_factory=dict)


def backoff_seconds(failures: int) -> float:
    return min(MAX_BACKOFF_SECONDS, 2.0 ** max(0, failures - 1))


def target_replicas(config: StageConfig, replica_concurrency: int) -> int:
    low, _ = replica_range(config.workload_size_id, False, replica_concurrency)
    return low


def reconcile(
    desired: list[EndpointDesired],
    replicas: list[ReplicaObservation],
    memory: dict[tuple[str, str], VersionMemory],
    previous_routes: dict[str, dict[str, str]],
    now: float,
    replica_concurrency: int = 4,
) -> Plan:
    plan = Plan()
    by_version: dict[tuple[str, str], list[ReplicaObservation]] = {}
    for replica in replicas:
        by_version.setdefault((replica.model_name, replica.version), []).append(replica)

    wanted: set[tuple[str, str]] = set()
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
            key = (model, version)
            wanted.add(key)
            config = endpoint.configs.get(stage or "", StageConfig())
            _plan_version(
                plan,
                key,
                stage,
                config,
                by_version.get(key, []),
                memory.get(key, VersionMemory()),
                now,
                replica_concurrency,
            )

    for key, group in by_version.items():
        if key not in wanted:
            for replica in group:
                if replica.state in LIVE_STATES:
                    plan.actions.append(StopReplica(replica.replica_id))
                elif replica.state in GONE_STATES:
                    plan.actions.append(ForgetReplica(replica.replica_id))
    return plan


def _plan_version(
    plan: Plan,
    key: tuple[str, str],
    stage: str | None,
    config: StageConfig,
    group: list[ReplicaObservation],
    memory: VersionMemory,
    now: float,
    replica_concurrency: int,
) -> None:
    model, version = key
    target = target_replicas(config, replica_concurrency)
    live = [r for r in group if r.state in LIVE_STATES]
    ready = [r for r in live if r.state is ReplicaState.READY]

    for replica in group:
        if replica.state in GONE_STATES:
            plan.actions.append(ForgetReplica(replica.replica_id))
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

    waiting_to_retry = memory.failures > 0 and now < memory.retry_at
    if memory.model_uri is None:
        if not memory.preparing and not waiting_to_retry:
            plan.actions.append(Prepare(model, version))
            memory = replace(memory, preparing=True)
    elif len(live) < target and not (waiting_to_retry and not ready):
        for _ in range(target - len(live)):
            plan.actions.append(StartReplica(model, version, memory.model_uri))
    elif len(live) > target:
        # Stop replicas still starting before those already serving, then the least busy.
        surplus = sorted(live, key=lambda r: (r.state is ReplicaState.READY, r.in_flight))[: len(live) - target]
        plan.actions.extend(StopReplica(r.replica_id) for r in surplus)

    if len(ready) >= target and memory.applied != config:
        memory = replace(memory, applied=config)
    plan.memory[key] = memory

    if ready:
        state, message = VersionState.READY, f"Ready: {len(ready)} of {target} replicas serving"
    elif memory.failures:
        state, message = VersionState.FAILED, memory.last_error
    elif memory.model_uri is None:
        state, message = VersionState.PENDING, "Downloading the model's artifacts"
    else:
        state, message = VersionState.PENDING, "Starting replicas; the model is loading"
    plan.views[key] = VersionView(
        model_name=model,
        version=version,
        state=state,
        message=message,
        stage=stage,
        config=config,
        config_pending=memory.applied != config,
        target_replicas=target,
        ready_replicas=len(ready),
    )
