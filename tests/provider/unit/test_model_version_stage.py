"""rtserve_model_version_stage: one test per CRUD operation, plus its error variants, over the real app."""

from __future__ import annotations

import pytest
from tf.types import Unknown
from tf.utils import Diagnostics

from rtserve.provider.plugin import RtserveProvider
from rtserve.provider.resources.model_version_stage import ModelVersionStageResource, promotion_progress
from rtserve.provider.servicer import ConfiguredPlanContext
from tests.fakes.app import AppServer
from tests.provider.unit.helpers import HOST, Contexts, FakeClock, errors, rejected_read

pytestmark = pytest.mark.unit
ctx = Contexts("rtserve_model_version_stage")


def planned(**overrides: object) -> dict:
    state = {
        "id": Unknown,
        "name": "iris",
        "version": "1",
        "stage": "Production",
        "archive_existing_versions": False,
        "comment": "first release",
        "wait_for_ready": True,
        "timeouts": None,
        "invocation_url": Unknown,
        "stage_invocation_url": Unknown,
    }
    state.update(overrides)
    return state


@pytest.fixture
def resource(provider: RtserveProvider) -> ModelVersionStageResource:
    return ModelVersionStageResource(provider)


@pytest.fixture
def serving(server: AppServer) -> AppServer:
    server.enable("iris")
    return server


def transitions(server: AppServer) -> list[dict]:
    return [p for m, path, p in server.calls if m == "POST" and path.endswith("/transition-stage")]


# -- create ----------------------------------------------------------------------------------------
def test_create_moves_the_version_to_the_stage_with_the_comment(
    resource: ModelVersionStageResource, server: AppServer
) -> None:
    c = ctx.create()
    state = resource.create(c, planned())

    assert errors(c) == []
    assert server.stages("iris")["1"] == "Production"
    assert transitions(server) == [
        {
            "name": "iris",
            "version": "1",
            "stage": "Production",
            "archive_existing_versions": False,
            "comment": "first release",
        }
    ]
    assert state["id"] == "iris/1"
    assert state["invocation_url"] == f"{HOST}/model/iris/1/invocations"
    assert state["stage_invocation_url"] == f"{HOST}/model-endpoint/iris/Production/invocations"


def test_create_waits_until_the_stage_serves_the_version_when_serving_is_enabled(
    resource: ModelVersionStageResource, serving: AppServer
) -> None:
    resource.create(ctx.create(), planned())
    alias_calls = [p for m, path, p in serving.calls if path.endswith("/list-version-aliases")]
    assert len(alias_calls) == 2  # done twice in a row


def test_create_does_not_wait_when_serving_is_not_enabled(
    resource: ModelVersionStageResource, server: AppServer, clock: FakeClock
) -> None:
    resource.create(ctx.create(), planned())
    assert clock.sleeps == []


def test_create_archiving_existing_versions_archives_the_previous_holder(
    resource: ModelVersionStageResource, server: AppServer
) -> None:
    server.set_stage("iris", "1", "Production")
    resource.create(ctx.create(), planned(version="2", archive_existing_versions=True))
    assert server.stages("iris") == {"1": "Archived", "2": "Production", "3": "None"}


def test_create_of_an_unknown_version_reports_the_backend_error(resource: ModelVersionStageResource) -> None:
    c = ctx.create()
    assert resource.create(c, planned(version="9")) is None
    [error] = errors(c)
    assert error.summary == "Could not move version 9 of 'iris' to Production: RESOURCE_DOES_NOT_EXIST"
    assert "version=9" in error.detail


def test_create_of_an_invalid_stage_reports_the_backend_error(resource: ModelVersionStageResource) -> None:
    c = ctx.create()
    resource.create(c, planned(stage="Prod"))
    assert errors(c)[0].summary == "Could not move version 1 of 'iris' to Prod: INVALID_PARAMETER_VALUE"


# -- read ------------------------------------------------------------------------------------------
def test_read_keeps_the_state_while_the_version_is_in_the_stage(
    resource: ModelVersionStageResource, server: AppServer
) -> None:
    state = resource.create(ctx.create(), planned())
    assert resource.read(ctx.read(), state) == state


def test_read_returns_none_when_the_version_left_the_stage(
    resource: ModelVersionStageResource, server: AppServer
) -> None:
    state = resource.create(ctx.create(), planned())
    server.set_stage("iris", "1", "Archived")
    assert resource.read(ctx.read(), state) is None


def test_read_returns_none_when_the_version_no_longer_exists(
    resource: ModelVersionStageResource, server: AppServer
) -> None:
    state = resource.create(ctx.create(), planned())
    server.delete_version("iris", "1")
    assert resource.read(ctx.read(), state) is None


def test_read_reports_other_errors_and_keeps_the_state(resource: ModelVersionStageResource, server: AppServer) -> None:
    state = resource.create(ctx.create(), planned())
    assert rejected_read(resource, ctx, server, state) == "Could not read version 1 of 'iris': UNAUTHENTICATED"


# -- update ----------------------------------------------------------------------------------------
def test_update_of_the_version_promotes_the_new_one_then_archives_the_old_one(
    resource: ModelVersionStageResource, serving: AppServer
) -> None:
    state = resource.create(ctx.create(), planned())
    serving.calls.clear()
    c = ctx.update()
    new = resource.update(c, state, planned(version="2"))

    assert errors(c) == []
    assert [(p["version"], p["stage"]) for p in transitions(serving)] == [("2", "Production"), ("1", "Archived")]
    assert serving.stages("iris") == {"1": "Archived", "2": "Production", "3": "None"}
    assert new["id"] == "iris/2"


def test_update_leaves_the_old_version_alone_once_it_left_the_stage(
    resource: ModelVersionStageResource, server: AppServer
) -> None:
    state = resource.create(ctx.create(), planned())
    server.set_stage("iris", "1", "Staging")
    resource.update(ctx.update(), state, planned(version="2"))
    assert server.stages("iris")["1"] == "Staging"


def test_update_of_the_comment_records_it_with_a_new_transition(
    resource: ModelVersionStageResource, server: AppServer
) -> None:
    state = resource.create(ctx.create(), planned())
    server.calls.clear()
    resource.update(ctx.update(), state, {**state, "comment": "hotfix"})
    assert [p["comment"] for p in transitions(server)] == ["hotfix"]


def test_update_of_wait_for_ready_alone_calls_nothing(resource: ModelVersionStageResource, server: AppServer) -> None:
    state = resource.create(ctx.create(), planned())
    server.calls.clear()
    resource.update(ctx.update(), state, {**state, "wait_for_ready": False})
    assert server.calls == []


def test_update_to_a_version_the_backend_refuses_keeps_the_old_state(
    resource: ModelVersionStageResource, server: AppServer
) -> None:
    state = resource.create(ctx.create(), planned())
    c = ctx.update()
    assert resource.update(c, state, planned(version="7")) == state
    assert errors(c)[0].summary == "Could not move version 7 of 'iris' to Production: RESOURCE_DOES_NOT_EXIST"
    assert server.stages("iris")["1"] == "Production"


# -- delete ----------------------------------------------------------------------------------------
def test_delete_archives_the_version_still_in_the_stage(resource: ModelVersionStageResource, server: AppServer) -> None:
    state = resource.create(ctx.create(), planned())
    c = ctx.delete()
    resource.delete(c, state)
    assert errors(c) == []
    assert server.stages("iris")["1"] == "Archived"


def test_delete_leaves_a_version_that_moved_elsewhere(resource: ModelVersionStageResource, server: AppServer) -> None:
    state = resource.create(ctx.create(), planned())
    server.set_stage("iris", "1", "Staging")
    resource.delete(ctx.delete(), state)
    assert server.stages("iris")["1"] == "Staging"


def test_delete_of_a_deleted_version_is_not_an_error(resource: ModelVersionStageResource, server: AppServer) -> None:
    state = resource.create(ctx.create(), planned())
    server.delete_version("iris", "1")
    c = ctx.delete()
    resource.delete(c, state)
    assert errors(c) == []


# -- import ----------------------------------------------------------------------------------------
def test_import_by_name_and_version_reads_the_current_stage(
    resource: ModelVersionStageResource, server: AppServer
) -> None:
    server.set_stage("iris", "2", "Staging")
    state = resource.import_(ctx.import_(), "iris/2")
    assert {k: state[k] for k in ("id", "name", "version", "stage", "archive_existing_versions")} == {
        "id": "iris/2",
        "name": "iris",
        "version": "2",
        "stage": "Staging",
        "archive_existing_versions": False,
    }


def test_import_with_an_id_without_version_explains_the_format(resource: ModelVersionStageResource) -> None:
    c = ctx.import_()
    assert resource.import_(c, "iris") is None
    assert errors(c)[0].summary == "Invalid import ID"
    assert '"<model name>/<version>"' in errors(c)[0].detail


def test_import_of_an_unknown_version_reports_the_backend_error(resource: ModelVersionStageResource) -> None:
    c = ctx.import_()
    assert resource.import_(c, "iris/42") is None
    assert errors(c)[0].summary == "Cannot import version 42 of 'iris': RESOURCE_DOES_NOT_EXIST"


# -- plan and waiting ------------------------------------------------------------------------------
def test_plan_defaults_archive_existing_versions_to_false_and_computes_the_urls(
    resource: ModelVersionStageResource,
) -> None:
    config = {"name": "iris", "version": "2", "stage": "Staging", "archive_existing_versions": None}
    plan_ctx = ConfiguredPlanContext(Diagnostics(), "rtserve_model_version_stage", set(), config=config)
    result = resource.plan(plan_ctx, None, planned(version="2", stage="Staging", archive_existing_versions=None))
    assert result["archive_existing_versions"] is False
    assert result["id"] == "iris/2"
    assert result["stage_invocation_url"] == f"{HOST}/model-endpoint/iris/Staging/invocations"


def test_plan_of_a_stage_that_is_not_served_has_no_stage_url(resource: ModelVersionStageResource) -> None:
    plan_ctx = ConfiguredPlanContext(Diagnostics(), "rtserve_model_version_stage", set(), config=None)
    assert resource.plan(plan_ctx, None, planned(stage="Archived"))["stage_invocation_url"] is None


def ready(version: str, state: str = "SERVICE_STATE_READY") -> dict:
    return {"endpoint_version_name": version, "service_status": {"state": state, "message": ""}}


def test_promotion_is_done_when_the_stage_serves_the_version_and_it_is_ready() -> None:
    assert promotion_progress("Production", "2", {"Production": "2"}, [ready("2")]).done
    assert not promotion_progress("Production", "2", {"Production": "2"}, [ready("2", "SERVICE_STATE_PENDING")]).done
    assert not promotion_progress("Production", "2", {"Production": "1"}, [ready("1"), ready("2")]).done


def test_promotion_is_done_when_a_newer_ready_version_shares_the_stage() -> None:
    assert promotion_progress("Production", "2", {"Production": "3"}, [ready("2"), ready("3")]).done


def test_promotion_fails_when_the_version_cannot_be_served() -> None:
    failed = {"endpoint_version_name": "2", "service_status": {"state": "SERVICE_STATE_FAILED", "message": "bad"}}
    assert promotion_progress("Production", "2", {"Production": "1"}, [failed]).failure == "version 2 failed: bad"
