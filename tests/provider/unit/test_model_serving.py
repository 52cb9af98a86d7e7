"""rtserve_model_serving: one test per CRUD operation, plus its error variants, over the real app (fake engine)."""

from __future__ import annotations

import pytest
from tf.iface import PlanContext
from tf.types import Unknown
from tf.utils import Diagnostics

from rtserve.provider.plugin import RtserveProvider
from rtserve.provider.resources.model_serving import ModelServingResource, serving_progress
from rtserve.provider.servicer import ConfiguredPlanContext
from tests.fakes.app import AppServer
from tests.provider.unit.helpers import HOST, Contexts, FakeClock, errors, rejected_read

pytestmark = pytest.mark.unit
ctx = Contexts("rtserve_model_serving")


def block(stage: str, size: str = "Small", scale_to_zero: bool = False, **placement: object) -> dict:
    """A compute_config block as Terraform holds it: every attribute, the placement ones null unless given."""
    unplaced = {"placement_node_labels": None, "placement_resources": None}
    return {"stage": stage, "workload_size": size, "scale_to_zero_enabled": scale_to_zero, **unplaced, **placement}


def planned(**overrides: object) -> dict:
    state = {
        "id": Unknown,
        "registered_model_name": "iris",
        "compute_config": [
            block("Staging", "Small", False),
            block("Production", "Medium", True),
        ],
        "wait_for_ready": True,
        "disable_on_destroy": True,
        "timeouts": None,
        "state": Unknown,
        "state_message": Unknown,
        "invocation_urls": Unknown,
        "version_invocation_urls": Unknown,
    }
    state.update(overrides)
    return state


@pytest.fixture
def resource(provider: RtserveProvider) -> ModelServingResource:
    return ModelServingResource(provider)


@pytest.fixture
def created(resource: ModelServingResource, server: AppServer) -> dict:
    server.set_stage("iris", "1", "Production")
    state = resource.create(ctx.create(), planned())
    assert state is not None
    return state


def calls(server: AppServer, method: str, suffix: str) -> list[dict]:
    return [params for m, path, params in server.calls if m == method and path.endswith(suffix)]


# -- create ----------------------------------------------------------------------------------------
def test_create_enables_serving_and_applies_each_compute_config(
    resource: ModelServingResource, server: AppServer
) -> None:
    server.set_stage("iris", "1", "Production")
    c = ctx.create()
    state = resource.create(c, planned())

    assert errors(c) == []
    assert calls(server, "POST", "/enable") == [{"registered_model_name": "iris"}]
    assert server.endpoints()["iris"]["Production"] == {"workload_size_id": "Medium", "scale_to_zero_enabled": True}
    assert state["id"] == "iris"
    assert state["state"] == "ENDPOINT_STATE_READY"
    assert state["compute_config"] == planned()["compute_config"]
    assert state["invocation_urls"] == {
        "Staging": f"{HOST}/model-endpoint/iris/Staging/invocations",
        "Production": f"{HOST}/model-endpoint/iris/Production/invocations",
    }
    assert state["version_invocation_urls"] == {"1": f"{HOST}/model/iris/1/invocations"}


def test_create_waits_until_the_endpoint_is_ready(
    resource: ModelServingResource, server: AppServer, clock: FakeClock
) -> None:
    server.set_stage("iris", "1", "Production")  # a version to wait for
    server.pending_polls(3)
    c = ctx.create()
    state = resource.create(c, planned())

    assert errors(c) == []
    assert state["state"] == "ENDPOINT_STATE_READY"
    # three PENDING answers, then READY twice in a row (the settle rule)
    assert len(clock.sleeps) == 4


def test_create_without_wait_for_ready_does_not_poll(
    resource: ModelServingResource, server: AppServer, clock: FakeClock
) -> None:
    server.set_stage("iris", "1", "Production")  # a version to wait for
    server.pending_polls(100)
    state = resource.create(ctx.create(), planned(wait_for_ready=False))

    assert state["state"] == "ENDPOINT_STATE_PENDING"
    assert clock.sleeps == []


def test_create_of_an_unknown_model_reports_the_backend_error_code_and_message(
    resource: ModelServingResource,
) -> None:
    c = ctx.create()
    state = resource.create(c, planned(registered_model_name="nope"))

    assert state is None
    [error] = errors(c)
    assert error.summary == "Could not enable serving for 'nope': RESOURCE_DOES_NOT_EXIST"
    assert "Registered model 'nope' does not exist." in error.detail
    assert "HTTP 404" in error.detail
    assert error.path == ["registered_model_name"]


def test_create_that_goes_failed_reports_the_state_message_and_returns_the_state(
    resource: ModelServingResource, server: AppServer
) -> None:
    server.set_stage("iris", "1", "Production")  # the endpoint fails when every version it serves fails
    server.fail("iris", "1", "ModuleNotFoundError: No module named 'xgboost'")
    c = ctx.create()
    state = resource.create(c, planned())

    [error] = errors(c)
    assert error.summary == "Serving of 'iris' failed: ENDPOINT_STATE_FAILED"
    assert "No module named 'xgboost'" in error.detail
    assert state is not None and state["state"] == "ENDPOINT_STATE_FAILED"  # recorded, tainted


def test_create_with_a_compute_config_the_backend_rejects_keeps_serving_recorded(
    resource: ModelServingResource, server: AppServer
) -> None:
    bad = [block("Staging", "Huge", False)]
    c = ctx.create()
    state = resource.create(c, planned(compute_config=bad))

    [error] = errors(c)
    assert error.summary == "Could not set the compute config of 'iris': INVALID_PARAMETER_VALUE"
    assert "got 'Huge'" in error.detail
    assert state is not None and state["compute_config"][0]["workload_size"] == "Small"  # what the backend has
    assert "iris" in server.endpoints()


def test_create_that_never_gets_ready_times_out_with_the_last_status(
    resource: ModelServingResource, server: AppServer
) -> None:
    server.set_stage("iris", "1", "Production")  # a version to wait for
    server.pending_polls(10_000)
    c = ctx.create()
    resource.create(c, planned(timeouts={"create": "10s", "update": None}))

    [error] = errors(c)
    assert error.summary == "Serving of 'iris' not ready after 10 s"
    assert "ENDPOINT_STATE_PENDING" in error.detail and "Starting replicas" in error.detail


def test_create_turns_an_unexpected_exception_into_a_diagnostic(
    resource: ModelServingResource, provider: RtserveProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(model: str) -> dict:
        raise RuntimeError("boom")

    monkeypatch.setattr(provider.client, "enable", boom)
    c = ctx.create()
    assert resource.create(c, planned()) is None
    [error] = errors(c)
    assert error.summary == "Could not create rtserve_model_serving: unexpected provider error"
    assert "RuntimeError: boom" in error.detail


def test_create_without_a_configured_provider_reports_how_to_configure_it() -> None:
    resource = ModelServingResource(RtserveProvider(environ={}))
    c = ctx.create()
    assert resource.create(c, planned()) is None
    assert errors(c)[0].summary == "The rtserve provider is not configured"


# -- read ------------------------------------------------------------------------------------------
def test_read_reports_compute_changed_out_of_band(
    resource: ModelServingResource, server: AppServer, created: dict
) -> None:
    server.update_compute("iris", "Staging", "Large")
    state = resource.read(ctx.read(), created)

    assert state["compute_config"][0] == block("Staging", "Large", False)


def test_read_keeps_only_the_declared_stages(resource: ModelServingResource, server: AppServer) -> None:
    only_production = [block("Production", "Small", False)]
    created = resource.create(ctx.create(), planned(compute_config=only_production))
    state = resource.read(ctx.read(), created)

    assert state["compute_config"] == only_production


def test_read_returns_none_when_serving_was_disabled_out_of_band(
    resource: ModelServingResource, server: AppServer, created: dict
) -> None:
    server.disable("iris")
    assert resource.read(ctx.read(), created) is None


def test_read_reports_other_errors_and_keeps_the_state(
    resource: ModelServingResource, server: AppServer, created: dict
) -> None:
    assert rejected_read(resource, ctx, server, created) == "Could not read serving of 'iris': UNAUTHENTICATED"


# -- update ----------------------------------------------------------------------------------------
def test_update_changes_only_the_stages_that_changed(
    resource: ModelServingResource, server: AppServer, created: dict
) -> None:
    server.calls.clear()
    target = planned()
    target["compute_config"][0]["workload_size"] = "Large"
    c = ctx.update()
    state = resource.update(c, created, target)

    assert errors(c) == []
    assert [p["stage"] for p in calls(server, "PUT", "/update-compute-config")] == ["Staging"]
    assert state["compute_config"][0]["workload_size"] == "Large"


def test_update_returns_a_removed_stage_to_the_backend_default(
    resource: ModelServingResource, server: AppServer, created: dict
) -> None:
    target = planned(compute_config=[planned()["compute_config"][0]])
    state = resource.update(ctx.update(), created, target)

    assert server.endpoints()["iris"]["Production"] == {"workload_size_id": "Small", "scale_to_zero_enabled": False}
    assert [b["stage"] for b in state["compute_config"]] == ["Staging"]


def test_update_of_wait_for_ready_alone_calls_no_mutating_route(
    resource: ModelServingResource, server: AppServer, created: dict
) -> None:
    server.calls.clear()
    resource.update(ctx.update(), created, {**created, "wait_for_ready": False})
    assert {m for m, _, _ in server.calls} == {"GET"}


def test_update_rejected_by_the_backend_reports_its_message(resource: ModelServingResource, created: dict) -> None:
    target = planned()
    target["compute_config"][1]["workload_size"] = "XL"
    c = ctx.update()
    state = resource.update(c, created, target)

    assert errors(c)[0].summary == "Could not change the compute config of 'iris': INVALID_PARAMETER_VALUE"
    assert state["compute_config"][1]["workload_size"] == "Medium"  # unchanged, as observed


# -- delete ----------------------------------------------------------------------------------------
def test_delete_disables_serving(resource: ModelServingResource, server: AppServer, created: dict) -> None:
    c = ctx.delete()
    resource.delete(c, created)
    assert errors(c) == []
    assert "iris" not in server.endpoints()


def test_delete_of_serving_already_disabled_is_not_an_error(
    resource: ModelServingResource, server: AppServer, created: dict
) -> None:
    server.disable("iris")
    c = ctx.delete()
    resource.delete(c, created)
    assert errors(c) == []


def test_delete_without_disable_on_destroy_resets_the_declared_stages_only(
    resource: ModelServingResource, server: AppServer, created: dict
) -> None:
    resource.delete(ctx.delete(), {**created, "disable_on_destroy": False})
    assert server.endpoints()["iris"]["Production"] == {"workload_size_id": "Small", "scale_to_zero_enabled": False}


def test_delete_reports_other_errors(resource: ModelServingResource, server: AppServer, created: dict) -> None:
    server.rotate_token()
    c = ctx.delete()
    resource.delete(c, created)
    assert errors(c)[0].summary == "Could not release serving of 'iris': UNAUTHENTICATED"


# -- import ----------------------------------------------------------------------------------------
def test_import_by_model_name_reads_every_stage(resource: ModelServingResource, server: AppServer) -> None:
    server.enable("iris")
    server.update_compute("iris", "Staging", "Small", scale_to_zero=True)
    server.update_compute("iris", "Production", "Large")
    state = resource.import_(ctx.import_(), "iris")

    assert state["id"] == "iris"
    assert state["wait_for_ready"] is True and state["disable_on_destroy"] is True
    assert state["compute_config"] == [
        block("Staging", "Small", True),
        block("Production", "Large", False),
    ]


def test_import_of_a_model_without_serving_reports_the_backend_error(resource: ModelServingResource) -> None:
    c = ctx.import_()
    assert resource.import_(c, "iris") is None
    assert errors(c)[0].summary == "Cannot import serving of 'iris': RESOURCE_DOES_NOT_EXIST"


# -- placement -------------------------------------------------------------------------------------
PLACED = {"placement_node_labels": {"zone": "b"}, "placement_resources": {"licensed": 1}}


def on_ray(server: AppServer) -> None:
    """The app's settings name the Ray engine (its engine stays the fake one), so placement is accepted."""
    server.settings = server.settings.model_copy(update={"engine": "ray"})


def test_placement_is_sent_as_the_backends_placement_object_and_refused_without_ray(
    resource: ModelServingResource, server: AppServer
) -> None:
    c = ctx.create()
    resource.create(c, planned(compute_config=[block("Staging", **PLACED)]))

    [body] = calls(server, "PUT", "/update-compute-config")
    assert body["desired_workload_config_spec"] == {
        "workload_size_id": "Small",
        "scale_to_zero_enabled": False,
        "placement": {"node_labels": {"zone": "b"}, "resources": {"licensed": 1}},
    }
    [error] = errors(c)  # this backend runs --engine local
    assert error.summary == "Could not set the compute config of 'iris': INVALID_PARAMETER_VALUE"
    assert "'desired_workload_config_spec.placement' needs the Ray engine" in error.detail


def test_placement_on_ray_is_applied_read_back_and_plans_nothing_more(
    resource: ModelServingResource, server: AppServer
) -> None:
    on_ray(server)
    server.set_stage("iris", "1", "Production")
    target = planned(compute_config=[block("Production", **PLACED)])
    c = ctx.create()
    state = resource.create(c, target)

    assert errors(c) == []
    # Enabling started a replica anywhere; the placement replaced it by one placed as asked.
    assert [(s.node_labels, s.resources) for s in server.engine.started] == [
        ({}, {}),
        ({"zone": "b"}, {"licensed": 1.0}),
    ]
    assert server.engine.stopped == [server.engine.started[0].replica_id]
    assert state["compute_config"] == [block("Production", **PLACED)]
    read = resource.read(ctx.read(), state)
    assert read == state
    assert resource.plan(PlanContext(Diagnostics(), "rtserve_model_serving", set()), read, dict(read)) == read


def test_removing_placement_clears_it_and_placement_set_out_of_band_shows_as_drift(
    resource: ModelServingResource, server: AppServer
) -> None:
    on_ray(server)
    state = resource.create(ctx.create(), planned(compute_config=[block("Staging", **PLACED)]))
    server.calls.clear()

    state = resource.update(ctx.update(), state, planned(compute_config=[block("Staging")]))

    [body] = calls(server, "PUT", "/update-compute-config")
    assert body["desired_workload_config_spec"]["placement"] == {}
    assert state["compute_config"] == [block("Staging")]
    server.api(
        "PUT",
        "/api/2.0/preview/mlflow/endpoints-v2/update-compute-config",
        json={
            "registered_model_name": "iris",
            "stage": "Staging",
            "desired_workload_config_spec": {"workload_size_id": "Small", "placement": {"node_labels": {"zone": "a"}}},
        },
    )
    assert resource.read(ctx.read(), state)["compute_config"] == [block("Staging", placement_node_labels={"zone": "a"})]


def test_an_absent_placement_reads_back_as_the_configuration_wrote_it(
    resource: ModelServingResource, server: AppServer
) -> None:
    written = block("Staging", placement_node_labels={}, placement_resources=None)
    c = ctx.create()
    state = resource.create(c, planned(compute_config=[written]))

    assert errors(c) == []
    assert resource.read(ctx.read(), state)["compute_config"] == [written]


# -- validate and plan -----------------------------------------------------------------------------
def test_validate_rejects_two_blocks_for_one_stage(resource: ModelServingResource) -> None:
    diags = Diagnostics()
    config = {"registered_model_name": "iris", "compute_config": [{"stage": "Staging"}, {"stage": "Staging"}]}
    resource.validate(diags, "rtserve_model_serving", config)
    assert [d.summary for d in diags.diagnostics] == ["Duplicate compute_config stage"]
    assert diags.diagnostics[0].path == ["compute_config", (1,), "stage"]


def test_validate_rejects_a_timeout_that_is_not_a_duration(resource: ModelServingResource) -> None:
    diags = Diagnostics()
    resource.validate(diags, "rtserve_model_serving", {"timeouts": {"create": "soon", "update": None}})
    assert diags.diagnostics[0].summary == "Invalid timeout"
    assert diags.diagnostics[0].path == ["timeouts", "create"]


def test_plan_fills_the_declared_defaults_where_the_config_sets_nothing(resource: ModelServingResource) -> None:
    config = {"registered_model_name": "iris", "compute_config": [{"stage": "Staging"}], "wait_for_ready": None}
    proposed = {
        **planned(),
        "compute_config": [{**block("Staging", "Large"), "scale_to_zero_enabled": None}],
        "wait_for_ready": None,
    }
    plan_ctx = ConfiguredPlanContext(Diagnostics(), "rtserve_model_serving", changed_fields=set(), config=config)
    result = resource.plan(plan_ctx, None, proposed)

    # Large was only carried over from a prior state: the config does not set it, so the default wins.
    assert result["compute_config"] == [block("Staging", "Small", False)]
    assert result["wait_for_ready"] is True
    assert result["id"] == "iris"
    assert result["invocation_urls"]["Staging"] == f"{HOST}/model-endpoint/iris/Staging/invocations"


def test_plan_of_an_unchanged_resource_keeps_every_computed_value(
    resource: ModelServingResource, created: dict
) -> None:
    result = resource.plan(PlanContext(Diagnostics(), "rtserve_model_serving", set()), created, dict(created))
    assert result == created


def test_plan_of_a_compute_change_leaves_status_unknown(resource: ModelServingResource, created: dict) -> None:
    proposed = {**created, "compute_config": [dict(b, workload_size="Large") for b in created["compute_config"]]}
    result = resource.plan(PlanContext(Diagnostics(), "rtserve_model_serving", set()), created, proposed)
    assert result["state"] is Unknown and result["version_invocation_urls"] is Unknown


# -- waiting ---------------------------------------------------------------------------------------
def version(name: str, service: str = "SERVICE_STATE_READY", update: str = "SERVICE_STATE_READY") -> dict:
    return {
        "endpoint_version_name": name,
        "service_status": {"state": service, "message": f"service {name}"},
        "config_update_status": {"state": update, "message": f"update {name}"},
    }


def test_progress_is_done_only_when_the_endpoint_and_every_version_are_ready() -> None:
    ready = {"state": "ENDPOINT_STATE_READY", "state_message": "Ready"}
    assert serving_progress(ready, [version("1")]).done
    assert not serving_progress(ready, [version("1"), version("2", update="SERVICE_STATE_PENDING")]).done
    assert not serving_progress({"state": "ENDPOINT_STATE_PENDING"}, []).done


def test_progress_fails_with_the_message_of_a_failed_version() -> None:
    ready = {"state": "ENDPOINT_STATE_READY", "state_message": "Ready"}
    progress = serving_progress(ready, [version("1"), version("2", service="SERVICE_STATE_FAILED")])
    assert progress.failure == "version 2 failed: service 2"
