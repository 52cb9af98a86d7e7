import pytest

from rtserve.server.control.placement import Placement
from rtserve.server.control.reconciler import (
    EndpointDesired,
    ForgetReplica,
    Observed,
    PendingConfig,
    Prepare,
    PromoteConfig,
    StartReplica,
    StopReplica,
    Tuning,
    VersionMemory,
    reconcile,
)
from rtserve.server.control.stages import RegisteredVersion
from rtserve.server.control.traffic import VersionTraffic
from rtserve.server.control.workloads import Compute, ReplicaSettings
from rtserve.server.engines.base import ReplicaObservation, ReplicaState
from rtserve.server.environments.preparation import BUILDING_MESSAGE

pytestmark = pytest.mark.unit
MODEL = "iris"


def endpoint(*versions: RegisteredVersion, configs: dict | None = None) -> EndpointDesired:
    return EndpointDesired(MODEL, configs or {}, tuple(versions))


def replica(rid: str, version: str, state: ReplicaState, in_flight: int = 0, message: str = "") -> ReplicaObservation:
    return ReplicaObservation(rid, MODEL, version, state, message, 0.0, 1, in_flight)


def obs(replicas: list, **traffic: VersionTraffic) -> Observed:
    return Observed(replicas, {(MODEL, v): t for v, t in traffic.items()})


def prepared(*versions: str) -> dict:
    return {(MODEL, v): VersionMemory(model_uri=f"/models/{v}") for v in versions}


def started(version: str, reason: str = "starting", batching=(1, 0.0), slots: int = 1) -> StartReplica:
    return StartReplica(MODEL, version, f"/models/{version}", reason, ReplicaSettings(batching), slots=slots)


def test_a_new_staged_version_is_downloaded_first():
    plan = reconcile([endpoint(RegisteredVersion("1", "Production"))], obs([]), {}, {}, now=0)
    assert plan.actions == [Prepare(MODEL, "1")]
    assert plan.views[(MODEL, "1")].state == "PENDING"
    # The download is in flight: the next tick does not ask again.
    again = reconcile([endpoint(RegisteredVersion("1", "Production"))], obs([]), plan.memory, {}, now=1)
    assert again.actions == []


def test_a_version_whose_environment_builds_is_pending_with_a_message_saying_so():
    building = {(MODEL, "1"): VersionMemory(preparing=True, preparing_message=BUILDING_MESSAGE)}
    plan = reconcile([endpoint(RegisteredVersion("1", "Production"))], obs([]), building, {}, now=0)
    assert plan.actions == []  # the build goes on: nothing is started or asked for again
    view = plan.views[(MODEL, "1")]
    assert (view.state, view.message) == ("PENDING", BUILDING_MESSAGE)
    assert "environment" in view.message and "build logs" in view.message


def test_a_downloaded_version_gets_its_replicas_started():
    plan = reconcile([endpoint(RegisteredVersion("1", "Production"))], obs([]), prepared("1"), {}, now=0)
    assert plan.actions == [started("1")]
    assert plan.routes == {MODEL: {"Production": "1"}}


def test_medium_workload_starts_more_replicas():
    configs = {"Production": Compute("Medium", False, 2)}
    plan = reconcile(
        [endpoint(RegisteredVersion("1", "Production"), configs=configs)], obs([]), prepared("1"), {}, now=0
    )
    assert plan.actions == [started("1", slots=2)] * 2


def test_nothing_happens_when_observed_matches_desired():
    observed = [replica("r1", "1", ReplicaState.READY)]
    plan = reconcile([endpoint(RegisteredVersion("1", "Production"))], obs(observed), prepared("1"), {}, now=0)
    assert plan.actions == []
    view = plan.views[(MODEL, "1")]
    assert (view.state, view.ready_replicas, view.compute_pending) == ("READY", 1, False)


def test_scaling_down_stops_the_least_busy_ready_replica():
    observed = [replica("busy", "1", ReplicaState.READY, 3), replica("idle", "1", ReplicaState.READY, 0)]
    plan = reconcile([endpoint(RegisteredVersion("1", "Production"))], obs(observed), prepared("1"), {}, now=0)
    assert plan.actions == [StopReplica("idle")]


def test_a_compute_change_is_pending_until_replicas_match_it():
    memory = {(MODEL, "1"): VersionMemory(model_uri="/m", applied=Compute("Small", False, 1))}
    configs = {"Production": Compute("Medium", False, 2)}
    observed = [replica("r1", "1", ReplicaState.READY)]
    plan = reconcile(
        [endpoint(RegisteredVersion("1", "Production"), configs=configs)], obs(observed), memory, {}, now=0
    )
    assert plan.views[(MODEL, "1")].compute_pending
    observed.append(replica("r2", "1", ReplicaState.READY))
    plan = reconcile(
        [endpoint(RegisteredVersion("1", "Production"), configs=configs)], obs(observed), plan.memory, {}, 1
    )
    assert not plan.views[(MODEL, "1")].compute_pending


def test_promotion_keeps_the_old_version_until_the_new_one_is_ready():
    versions = (RegisteredVersion("1", "Archived"), RegisteredVersion("2", "Staging"))
    observed = [replica("old", "1", ReplicaState.READY), replica("new", "2", ReplicaState.STARTING)]
    plan = reconcile([endpoint(*versions)], obs(observed), prepared("1", "2"), {MODEL: {"Staging": "1"}}, now=0)
    assert plan.routes[MODEL] == {"Staging": "1"}
    assert plan.actions == []
    observed[1] = replica("new", "2", ReplicaState.READY)
    plan = reconcile([endpoint(*versions)], obs(observed), plan.memory, plan.routes, now=1)
    assert plan.routes[MODEL] == {"Staging": "2"}
    assert plan.actions == [StopReplica("old")]


def test_a_load_failure_fails_the_version_and_retries_with_backoff():
    versions = (RegisteredVersion("1", "Production"),)
    observed = [replica("r1", "1", ReplicaState.FAILED, message="ModuleNotFoundError: no module named 'x'")]
    plan = reconcile([endpoint(*versions)], obs(observed), prepared("1"), {}, now=100)
    assert plan.actions == [ForgetReplica("r1")]
    view = plan.views[(MODEL, "1")]
    assert view.state == "FAILED" and "ModuleNotFoundError" in view.message
    assert reconcile([endpoint(*versions)], obs([]), plan.memory, {}, now=100.5).actions == []
    retry = reconcile([endpoint(*versions)], obs([]), plan.memory, {}, now=101.5)
    assert retry.actions == [started("1")]
    # A second failure waits longer.
    second = reconcile([endpoint(*versions)], obs(observed), retry.memory, {}, now=102)
    assert reconcile([endpoint(*versions)], obs([]), second.memory, {}, now=103.5).actions == []
    assert reconcile([endpoint(*versions)], obs([]), second.memory, {}, now=104.5).actions != []


def test_a_crashed_replica_is_replaced():
    observed = [replica("r1", "1", ReplicaState.CRASHED, message="killed by signal 9")]
    plan = reconcile([endpoint(RegisteredVersion("1", "Production"))], obs(observed), prepared("1"), {}, now=0)
    assert plan.actions == [ForgetReplica("r1"), started("1", "replacing a crashed replica")]


def test_disabling_stops_every_replica_of_the_model():
    observed = [replica("r1", "1", ReplicaState.READY), replica("r2", "2", ReplicaState.STARTING)]
    plan = reconcile([], obs(observed), prepared("1", "2"), {}, now=0)
    assert plan.actions == [StopReplica("r1"), StopReplica("r2")]
    assert plan.views == {}


def test_several_versions_in_one_stage_are_all_served_and_the_newest_takes_the_url():
    versions = (RegisteredVersion("1", "Staging"), RegisteredVersion("2", "Staging"))
    observed = [replica("a", "1", ReplicaState.READY), replica("b", "2", ReplicaState.READY)]
    plan = reconcile([endpoint(*versions)], obs(observed), prepared("1", "2"), {}, now=0)
    assert plan.actions == []
    assert plan.routes[MODEL] == {"Staging": "2"}
    assert set(plan.views) == {(MODEL, "1"), (MODEL, "2")}


S2Z = {"Production": Compute("Small", True, 1)}
IDLE = Tuning(idle_seconds=60)


def test_an_idle_version_with_scale_to_zero_stops_its_replicas_and_stays_ready():
    versions = (RegisteredVersion("1", "Production"),)
    observed = [replica("r1", "1", ReplicaState.READY)]
    memory = {(MODEL, "1"): VersionMemory(model_uri="/models/1", served_since=1.0)}
    busy = obs(observed, **{"1": VersionTraffic(0, 30.0)})
    assert reconcile([endpoint(*versions, configs=S2Z)], busy, memory, {}, now=60, tuning=IDLE).actions == []
    plan = reconcile([endpoint(*versions, configs=S2Z)], busy, memory, {}, now=91, tuning=IDLE)
    assert plan.actions == [StopReplica("r1")]
    view = reconcile([endpoint(*versions, configs=S2Z)], obs([]), plan.memory, {}, now=92, tuning=IDLE).views
    assert view[(MODEL, "1")].state == "READY" and "zero" in view[(MODEL, "1")].message


def test_a_request_at_zero_replicas_starts_one_at_once():
    versions = (RegisteredVersion("1", "Production"),)
    memory = {(MODEL, "1"): VersionMemory(model_uri="/models/1", served_since=1.0)}
    waiting = obs([], **{"1": VersionTraffic(1, 500.0)})
    plan = reconcile([endpoint(*versions, configs=S2Z)], waiting, memory, {}, now=500, tuning=IDLE)
    assert plan.actions == [started("1", "cold start for a waiting request")]


def test_load_beyond_one_replica_scales_up_after_the_delay():
    versions = (RegisteredVersion("1", "Production"),)
    configs = {"Production": Compute("Medium", False, 1)}
    observed = [replica("a", "1", ReplicaState.READY, 8), replica("b", "1", ReplicaState.READY, 8)]
    loaded = obs(observed, **{"1": VersionTraffic(16, 10.0)})
    first = reconcile([endpoint(*versions, configs=configs)], loaded, prepared("1"), {}, now=10)
    assert first.actions == []
    later = reconcile([endpoint(*versions, configs=configs)], loaded, first.memory, {}, now=11)
    assert later.actions == [started("1", "scaling up", slots=4)] * 2


def test_a_batching_change_replaces_replicas_only_once_the_new_ones_are_ready():
    versions = (RegisteredVersion("1", "Production"),)
    configs = {"Production": Compute("Small", False, 2, max_batch_size=16, max_batch_wait_ms=5)}
    old = replica("old", "1", ReplicaState.READY)
    plan = reconcile([endpoint(*versions, configs=configs)], obs([old]), prepared("1"), {}, now=0)
    assert plan.actions == [started("1", "starting", (16, 5))]
    new = replica("new", "1", ReplicaState.READY)
    observed = Observed([old, new], {}, reported_batching={"new": (16, 5)})  # as an adopted replica reports it
    plan = reconcile([endpoint(*versions, configs=configs)], observed, plan.memory, {}, now=1)
    assert plan.actions == [StopReplica("old")]


def test_a_version_pinned_by_a_serving_endpoint_runs_whatever_its_stage():
    pinned = {(MODEL, "3"): Compute("Medium", False)}
    plan = reconcile([], obs([]), prepared("3"), {}, now=0, pinned=pinned)
    assert plan.actions == [started("3", slots=2)] * 2
    assert plan.views[(MODEL, "3")].stage is None
    # Unpinned (its endpoint deleted), its replicas stop.
    running = [replica("r1", "3", ReplicaState.READY), replica("r2", "3", ReplicaState.READY)]
    assert reconcile([], obs(running), prepared("3"), {}, now=1, pinned={}).actions == [
        StopReplica("r1"),
        StopReplica("r2"),
    ]


def test_a_version_served_by_a_stage_and_an_endpoint_runs_once_sized_for_the_larger():
    configs = {"Production": Compute("Small", True)}
    pinned = {(MODEL, "1"): Compute("Medium", False)}
    plan = reconcile(
        [endpoint(RegisteredVersion("1", "Production"), configs=configs)], obs([]), prepared("1"), {}, 0, pinned=pinned
    )
    view = plan.views[(MODEL, "1")]
    assert (view.stage, view.compute.workload_size_id, view.compute.scale_to_zero_enabled) == (
        "Production",
        "Medium",
        False,
    )
    assert plan.actions == [started("1", slots=2)] * 2


def test_a_version_only_an_endpoint_serves_is_not_counted_as_staged():
    pinned = {(MODEL, "2"): Compute()}
    plan = reconcile(
        [endpoint(RegisteredVersion("1", "Production"))], obs([]), prepared("1", "2"), {}, 0, pinned=pinned
    )
    assert plan.views[(MODEL, "1")].staged and not plan.views[(MODEL, "2")].staged


def test_a_pending_config_is_promoted_by_an_action_once_every_version_it_serves_is_ready():
    pinned = {(MODEL, "2"): Compute(), (MODEL, "3"): Compute()}
    update = PendingConfig("iris-ab", '{"config_version": 2}', ((MODEL, "2"), (MODEL, "3")))
    one_ready = [replica("r2", "2", ReplicaState.READY), replica("r3", "3", ReplicaState.STARTING)]
    plan = reconcile([], obs(one_ready), prepared("2", "3"), {}, 0, pinned=pinned, pending=[update])
    assert not [a for a in plan.actions if isinstance(a, PromoteConfig)]
    both_ready = [replica("r2", "2", ReplicaState.READY), replica("r3", "3", ReplicaState.READY)]
    plan = reconcile([], obs(both_ready), prepared("2", "3"), {}, 1, pinned=pinned, pending=[update])
    assert [a for a in plan.actions if isinstance(a, PromoteConfig)] == [PromoteConfig("iris-ab", update.stored)]


def test_new_environment_vars_replace_replicas_and_the_update_waits_for_one_that_has_them():
    variables = (("API_TOKEN", "{{secrets/iris/token}}"),)
    pinned = {(MODEL, "2"): Compute(environment_vars=variables)}
    update = PendingConfig("iris-env", '{"config_version": 2}', ((MODEL, "2"),))
    old = replica("old", "2", ReplicaState.READY)
    observed = Observed([old], {}, {"old": ReplicaSettings()})
    plan = reconcile([], observed, prepared("2"), {}, 0, pinned=pinned, pending=[update])
    assert plan.actions == [
        StartReplica(MODEL, "2", "/models/2", "starting", ReplicaSettings(environment_vars=variables))
    ]
    assert plan.views[(MODEL, "2")].awaiting_current

    new = replica("new", "2", ReplicaState.READY)
    observed = Observed([old, new], {}, {"old": ReplicaSettings(), "new": ReplicaSettings(environment_vars=variables)})
    plan = reconcile([], observed, plan.memory, {}, 1, pinned=pinned, pending=[update])
    assert plan.actions == [StopReplica("old"), PromoteConfig("iris-env", update.stored)]


def test_a_new_placement_replaces_replicas_once_one_runs_where_it_asks():
    placement = Placement(node_labels=(("zone", "b"),))
    pinned = {(MODEL, "2"): Compute(placement=placement)}
    old = replica("old", "2", ReplicaState.READY)
    observed = Observed([old], {}, {"old": ReplicaSettings()})
    plan = reconcile([], observed, prepared("2"), {}, 0, pinned=pinned)
    assert plan.actions == [StartReplica(MODEL, "2", "/models/2", "starting", ReplicaSettings(placement=placement))]

    new = replica("new", "2", ReplicaState.READY)
    observed = Observed([old, new], {}, {"old": ReplicaSettings(), "new": ReplicaSettings(placement=placement)})
    plan = reconcile([], observed, plan.memory, {}, 1, pinned=pinned)
    assert plan.actions == [StopReplica("old")]


def test_a_stages_new_placement_replaces_its_versions_replicas_once_one_runs_where_it_asks():
    placement = Placement(resources=(("licensed", 1.0),))
    versions = (RegisteredVersion("1", "Production"),)
    configs = {"Production": Compute("Small", False, 2, placement=placement)}
    old = replica("old", "1", ReplicaState.READY)
    observed = Observed([old], {}, {"old": ReplicaSettings()})
    plan = reconcile([endpoint(*versions, configs=configs)], observed, prepared("1"), {}, now=0)
    assert plan.actions == [StartReplica(MODEL, "1", "/models/1", "starting", ReplicaSettings(placement=placement))]

    new = replica("new", "1", ReplicaState.READY)
    observed = Observed([old, new], {}, {"old": ReplicaSettings(), "new": ReplicaSettings(placement=placement)})
    plan = reconcile([endpoint(*versions, configs=configs)], observed, plan.memory, {}, now=1)
    assert plan.actions == [StopReplica("old")]


def test_a_version_a_stage_and_an_endpoint_serve_runs_where_the_endpoint_asks_else_where_the_stage_asks():
    stage_placement = Placement(node_labels=(("zone", "a"),))
    entity_placement = Placement(node_labels=(("zone", "b"),))
    desired = [
        endpoint(RegisteredVersion("1", "Production"), configs={"Production": Compute(placement=stage_placement)})
    ]
    for pinned, expected in (
        (Compute(placement=entity_placement), entity_placement),
        (Compute(), stage_placement),
    ):
        plan = reconcile(desired, obs([]), prepared("1"), {}, 0, pinned={(MODEL, "1"): pinned})
        assert plan.actions == [StartReplica(MODEL, "1", "/models/1", "starting", ReplicaSettings(placement=expected))]
