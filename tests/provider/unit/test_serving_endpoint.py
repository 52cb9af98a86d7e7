"""rtserve_serving_endpoint: each CRUD operation and its error variants over the real app (fake engine), then
validation and planning (declared defaults, what becomes unknown), then the rollout progress rule."""

from __future__ import annotations

import pytest
from tf.iface import PlanContext
from tf.types import Unknown
from tf.utils import Diagnostics

from rtserve.provider.plugin import RtserveProvider
from rtserve.provider.resources.serving_endpoint import ServingEndpointResource
from rtserve.provider.resources.serving_endpoint_config import rollout_progress, state_from_detail
from rtserve.provider.servicer import ConfiguredPlanContext
from tests.fakes.app import AppServer
from tests.provider.unit.helpers import HOST, Contexts, FakeClock, errors, rejected_read

pytestmark = pytest.mark.unit
TYPE = "rtserve_serving_endpoint"
ctx = Contexts(TYPE)


def entity(version: str = "1", name: str | None = None, **overrides: object) -> dict:
    return {
        "name": name or f"iris-{version}",
        "entity_name": "iris",
        "entity_version": version,
        "workload_size": "Small",
        "scale_to_zero_enabled": False,
        "min_provisioned_concurrency": None,
        "max_provisioned_concurrency": None,
        "environment_policy": None,
        "environment_vars": None,
        "placement_node_labels": None,
        "placement_resources": None,
        **overrides,
    }


def sent(block: dict) -> dict:
    """A served entity as the request carries it: unset attributes left out."""
    return {key: value for key, value in block.items() if value is not None}


def routes(*shares: tuple[str, int]) -> dict:
    return {"routes": [{"served_model_name": name, "traffic_percentage": share} for name, share in shares]}


def planned(**overrides: object) -> dict:
    state = {
        "id": "web",
        "name": "web",
        "served_entities": [entity("1")],
        "traffic_config": routes(("iris-1", 100)),
        "tags": None,
        "timeouts": None,
        "endpoint_id": Unknown,
        "endpoint_url": f"{HOST}/serving-endpoints/web/invocations",
        "config_version": Unknown,
        "state_ready": Unknown,
        "state_config_update": Unknown,
    }
    state.update(overrides)
    return state


def split(blue: int = 80, green: int = 20) -> dict:
    return planned(
        served_entities=[entity("1", "blue"), entity("2", "green")],
        traffic_config=routes(("blue", blue), ("green", green)),
    )


@pytest.fixture
def resource(provider: RtserveProvider) -> ServingEndpointResource:
    return ServingEndpointResource(provider)


def create(resource: ServingEndpointResource, state: dict) -> dict:
    """The state of a create that must succeed."""
    c = ctx.create()
    created = resource.create(c, state)
    assert errors(c) == [] and created is not None
    return created


@pytest.fixture
def created(resource: ServingEndpointResource) -> dict:
    return create(resource, planned(tags={"team": "ml"}))


def calls(server: AppServer, method: str) -> list[tuple[str, dict]]:
    return [(path, params) for m, path, params in server.calls if m == method]


# -- create ----------------------------------------------------------------------------------------
def test_create_posts_the_config_and_returns_once_ready_and_not_updating(
    resource: ServingEndpointResource, server: AppServer, clock: FakeClock
) -> None:
    server.rollout_polls(3)
    c = ctx.create()
    state = resource.create(c, planned(tags={"team": "ml"}))

    assert errors(c) == []
    [(path, body)] = calls(server, "POST")
    assert path == "/api/2.0/serving-endpoints"
    assert body == {
        "name": "web",
        "config": {
            "served_entities": [sent(entity("1"))],
            "traffic_config": routes(("iris-1", 100)),
        },
        "tags": [{"key": "team", "value": "ml"}],
    }
    assert (state["state_ready"], state["state_config_update"]) == ("READY", "NOT_UPDATING")
    assert state["config_version"] == 1
    assert state["endpoint_id"] == "id-web"
    assert state["endpoint_url"] == f"{HOST}/serving-endpoints/web/invocations"
    assert state["tags"] == {"team": "ml"}
    assert state["served_entities"] == [entity("1")]
    # three IN_PROGRESS answers, then READY twice in a row (the settle rule)
    assert len(clock.sleeps) == 4


def test_create_of_a_traffic_split_sends_both_entities_and_the_routes(
    resource: ServingEndpointResource, server: AppServer
) -> None:
    state = resource.create(ctx.create(), split())

    assert server.serving_endpoints()["web"]["config"]["routes"] == routes(("blue", 80), ("green", 20))["routes"]
    assert state["traffic_config"] == routes(("blue", 80), ("green", 20))
    assert [e["name"] for e in state["served_entities"]] == ["blue", "green"]


def test_create_naming_a_missing_model_version_reports_the_backends_code_and_message(
    resource: ServingEndpointResource, server: AppServer
) -> None:
    c = ctx.create()
    state = resource.create(c, planned(served_entities=[entity("9")], traffic_config=routes(("iris-9", 100))))

    assert state is None
    [error] = errors(c)
    assert error.summary == "Could not create serving endpoint 'web': RESOURCE_DOES_NOT_EXIST"
    assert "version 9 of registered model 'iris' does not exist" in error.detail
    assert "HTTP 404" in error.detail
    assert server.serving_endpoints() == {}


def test_create_whose_entity_fails_to_deploy_reports_its_message_and_returns_the_endpoint(
    resource: ServingEndpointResource, server: AppServer
) -> None:
    server.fail("iris", "1", "ModuleNotFoundError: No module named 'xgboost'")
    c = ctx.create()
    state = resource.create(c, planned())

    [error] = errors(c)
    assert error.summary == "Serving endpoint 'web' could not deploy config version 1: DEPLOYMENT_FAILED"
    assert "served entity 'iris-1' (iris version 1): DEPLOYMENT_FAILED" in error.detail
    assert "No module named 'xgboost'" in error.detail
    assert "tainted" in error.detail
    assert state is not None and state["state_config_update"] == "UPDATE_FAILED"  # recorded, tainted


def test_create_that_never_gets_ready_times_out_with_the_last_status(
    resource: ServingEndpointResource, server: AppServer
) -> None:
    server.rollout_polls(10_000)
    c = ctx.create()
    state = resource.create(c, planned(timeouts={"create": "10s", "update": None}))

    [error] = errors(c)
    assert error.summary == "Serving endpoint 'web' not ready after 10 s"
    assert "ready=NOT_READY, config_update=IN_PROGRESS" in error.detail
    assert "DEPLOYMENT_CREATING Starting replicas" in error.detail
    assert "timeouts.create" in error.detail
    assert state["state_config_update"] == "IN_PROGRESS"


def test_create_of_a_name_taken_says_how_to_import_it(resource: ServingEndpointResource, created: dict) -> None:
    c = ctx.create()
    assert resource.create(c, planned()) is None
    [error] = errors(c)
    assert error.summary == "Could not create serving endpoint 'web': RESOURCE_ALREADY_EXISTS"
    assert "terraform import <address> web" in error.detail


def test_create_without_a_configured_provider_reports_how_to_configure_it() -> None:
    resource = ServingEndpointResource(RtserveProvider(environ={}))
    c = ctx.create()
    assert resource.create(c, planned()) is None
    assert errors(c)[0].summary == "The rtserve provider is not configured"


# -- read ------------------------------------------------------------------------------------------
def test_read_of_an_unchanged_endpoint_is_the_state(resource: ServingEndpointResource, created: dict) -> None:
    assert resource.read(ctx.read(), created) == created


def test_read_reports_a_config_changed_out_of_band(
    resource: ServingEndpointResource, server: AppServer, created: dict
) -> None:
    server.api(
        "PUT",
        "/api/2.0/serving-endpoints/web/config",
        json={"served_entities": [sent(entity("1", workload_size="Large"))]},
    )
    state = resource.read(ctx.read(), created)
    assert state["served_entities"][0]["workload_size"] == "Large"


def test_read_returns_none_when_the_endpoint_was_deleted_out_of_band(
    resource: ServingEndpointResource, server: AppServer, created: dict
) -> None:
    server.api("DELETE", "/api/2.0/serving-endpoints/web")
    assert resource.read(ctx.read(), created) is None


def test_read_during_an_update_describes_the_config_it_is_becoming(
    resource: ServingEndpointResource, server: AppServer, created: dict
) -> None:
    server.rollout_polls(5)
    resource.provider.client.update_serving_endpoint_config("web", {"served_entities": [entity("2")]})
    state = resource.read(ctx.read(), created)
    assert state["served_entities"] == [entity("2")]
    assert (state["config_version"], state["state_config_update"]) == (2, "IN_PROGRESS")


def test_read_after_a_failed_update_describes_the_config_still_serving(
    resource: ServingEndpointResource, server: AppServer, created: dict
) -> None:
    server.fail("iris", "2", "boom")
    resource.provider.client.update_serving_endpoint_config("web", {"served_entities": [entity("2")]})
    state = resource.read(ctx.read(), created)
    assert state["served_entities"] == [entity("1")]  # so the next plan shows the change again
    assert state["state_config_update"] == "UPDATE_FAILED"


def test_read_reports_other_errors_and_keeps_the_state(
    resource: ServingEndpointResource, server: AppServer, created: dict
) -> None:
    assert rejected_read(resource, ctx, server, created) == "Could not read serving endpoint 'web': UNAUTHENTICATED"


def test_read_keeps_the_configured_spelling_of_a_version_number(
    resource: ServingEndpointResource, created: dict
) -> None:
    spelled = {**created, "served_entities": [entity("01", name="iris-1")]}
    assert resource.read(ctx.read(), spelled)["served_entities"][0]["entity_version"] == "01"


# -- update ----------------------------------------------------------------------------------------
def test_update_of_the_version_puts_a_new_config_and_waits_for_it(
    resource: ServingEndpointResource, server: AppServer, clock: FakeClock, created: dict
) -> None:
    server.calls.clear()
    server.rollout_polls(2)
    target = planned(tags={"team": "ml"}, served_entities=[entity("2")], traffic_config=routes(("iris-2", 100)))
    c = ctx.update()
    state = resource.update(c, created, target)

    assert errors(c) == []
    [(path, body)] = calls(server, "PUT")
    assert path == "/api/2.0/serving-endpoints/web/config"
    assert body["served_entities"] == [sent(entity("2"))]
    assert calls(server, "PATCH") == []
    assert state["config_version"] == 2
    assert (state["state_ready"], state["state_config_update"]) == ("READY", "NOT_UPDATING")
    assert server.serving_endpoints()["web"]["config"]["served_entities"][0]["entity_version"] == "2"


def test_environment_vars_are_sent_and_read_back_as_the_secret_reference_never_the_value(
    resource: ServingEndpointResource, server: AppServer, created: dict
) -> None:
    server.services.secrets.create_scope("team")
    server.services.secrets.put("team", "token", "value-never-in-state")
    variables = {"LOG_LEVEL": "debug", "API_TOKEN": "{{secrets/team/token}}"}
    server.calls.clear()
    target = planned(served_entities=[entity("1", environment_vars=variables)])
    c = ctx.update()
    state = resource.update(c, created, target)

    assert errors(c) == []
    [(_, body)] = calls(server, "PUT")
    assert body["served_entities"][0]["environment_vars"] == variables
    assert state["served_entities"][0]["environment_vars"] == variables
    assert "value-never-in-state" not in repr(state)
    assert resource.read(ctx.read(), state)["served_entities"] == state["served_entities"]


def test_update_of_the_traffic_split_alone_puts_a_config(resource: ServingEndpointResource, server: AppServer) -> None:
    current = resource.create(ctx.create(), split())
    state = resource.update(ctx.update(), current, split(blue=50, green=50))
    assert server.serving_endpoints()["web"]["config"]["routes"] == routes(("blue", 50), ("green", 50))["routes"]
    assert state["traffic_config"] == routes(("blue", 50), ("green", 50))


def test_update_of_tags_alone_patches_them_and_rolls_nothing_out(
    resource: ServingEndpointResource, server: AppServer, clock: FakeClock, created: dict
) -> None:
    server.calls.clear()
    clock.sleeps.clear()
    c = ctx.update()
    state = resource.update(c, created, {**created, "tags": {"tier": "gold"}})

    assert errors(c) == []
    assert calls(server, "PUT") == [] and calls(server, "POST") == []
    [(path, body)] = calls(server, "PATCH")
    assert path == "/api/2.0/serving-endpoints/web/tags"
    assert body == {"add_tags": [{"key": "tier", "value": "gold"}], "delete_tags": ["team"]}
    assert state["tags"] == {"tier": "gold"}
    assert clock.sleeps == []


def test_update_waits_for_an_update_in_progress_then_puts_its_own(
    resource: ServingEndpointResource, server: AppServer, created: dict
) -> None:
    server.rollout_polls(3)  # someone else's update is rolling out
    resource.provider.client.update_serving_endpoint_config("web", {"served_entities": [entity("2")]})
    target = planned(tags={"team": "ml"}, served_entities=[entity("3")], traffic_config=routes(("iris-3", 100)))
    c = ctx.update()
    state = resource.update(c, created, target)

    assert errors(c) == []
    puts = [body for path, body in calls(server, "PUT") if path.endswith("/config")]
    assert len(puts) == 3  # someone else's, ours refused with 409, ours again once theirs was done
    assert state["config_version"] == 3 and state["served_entities"] == [entity("3")]


def test_update_gives_up_waiting_for_another_update_at_the_timeout(
    resource: ServingEndpointResource, server: AppServer, created: dict
) -> None:
    server.rollout_polls(10_000)
    resource.provider.client.update_serving_endpoint_config("web", {"served_entities": [entity("2")]})
    target = planned(
        tags={"team": "ml"},
        served_entities=[entity("3")],
        traffic_config=routes(("iris-3", 100)),
        timeouts={"create": None, "update": "30s"},
    )
    c = ctx.update()
    resource.update(c, created, target)

    [error] = errors(c)
    assert error.summary == "Serving endpoint 'web' is still being updated by another change"
    assert "config_update=IN_PROGRESS (config version 2)" in error.detail


def test_update_that_fails_to_deploy_keeps_the_old_config_in_the_state(
    resource: ServingEndpointResource, server: AppServer, created: dict
) -> None:
    server.fail("iris", "2", "weights.bin is missing")
    target = planned(tags={"team": "ml"}, served_entities=[entity("2")], traffic_config=routes(("iris-2", 100)))
    c = ctx.update()
    state = resource.update(c, created, target)

    [error] = errors(c)
    assert error.summary == "Serving endpoint 'web' could not deploy config version 2: DEPLOYMENT_FAILED"
    assert "weights.bin is missing" in error.detail
    assert "The previous config keeps serving" in error.detail
    assert state["served_entities"] == [entity("1")]  # the next plan shows the change again


def test_update_rejected_by_the_backend_reports_its_message(resource: ServingEndpointResource, created: dict) -> None:
    target = planned(tags={"team": "ml"}, served_entities=[entity("1", workload_size="XL")])
    c = ctx.update()
    state = resource.update(c, created, target)

    assert errors(c)[0].summary == "Could not update the config of serving endpoint 'web': INVALID_PARAMETER_VALUE"
    assert "got 'XL'" in errors(c)[0].detail
    assert state["served_entities"] == [entity("1")]


def test_update_of_timeouts_alone_calls_no_mutating_route(
    resource: ServingEndpointResource, server: AppServer, created: dict
) -> None:
    server.calls.clear()
    resource.update(ctx.update(), created, {**created, "timeouts": {"create": "5m", "update": "5m"}})
    assert {m for m, _, _ in server.calls} == {"GET"}


# -- delete ----------------------------------------------------------------------------------------
def test_delete_deletes_the_endpoint(resource: ServingEndpointResource, server: AppServer, created: dict) -> None:
    c = ctx.delete()
    resource.delete(c, created)
    assert errors(c) == [] and server.serving_endpoints() == {}


def test_delete_of_an_endpoint_already_gone_is_not_an_error(
    resource: ServingEndpointResource, server: AppServer, created: dict
) -> None:
    server.api("DELETE", "/api/2.0/serving-endpoints/web")
    c = ctx.delete()
    resource.delete(c, created)
    assert errors(c) == []


def test_delete_reports_other_errors(resource: ServingEndpointResource, server: AppServer, created: dict) -> None:
    server.rotate_token()
    c = ctx.delete()
    resource.delete(c, created)
    assert errors(c)[0].summary == "Could not delete serving endpoint 'web': UNAUTHENTICATED"


# -- import ----------------------------------------------------------------------------------------
def test_import_by_name_reads_the_config_and_tags(resource: ServingEndpointResource, server: AppServer) -> None:
    resource.create(ctx.create(), {**split(), "tags": {"team": "ml"}})
    state = resource.import_(ctx.import_(), "web")

    assert state["id"] == "web" and state["name"] == "web"
    assert state["served_entities"] == [entity("1", "blue"), entity("2", "green")]
    assert state["traffic_config"] == routes(("blue", 80), ("green", 20))
    assert state["tags"] == {"team": "ml"}
    assert state["timeouts"] is None


def test_import_of_an_endpoint_without_tags_has_null_tags(resource: ServingEndpointResource) -> None:
    resource.create(ctx.create(), planned())
    assert resource.import_(ctx.import_(), "web")["tags"] is None


def test_import_of_an_unknown_endpoint_reports_the_backend_error(resource: ServingEndpointResource) -> None:
    c = ctx.import_()
    assert resource.import_(c, "nope") is None
    assert errors(c)[0].summary == "Cannot import serving endpoint 'nope': RESOURCE_DOES_NOT_EXIST"


def test_create_sends_the_environment_policy_and_reads_it_back(resource: ServingEndpointResource, server: AppServer):
    state = create(resource, planned(served_entities=[entity("1", environment_policy="isolated")]))

    [(_, body)] = calls(server, "POST")
    assert body["config"]["served_entities"] == [sent(entity("1", environment_policy="isolated"))]
    assert state["served_entities"] == [entity("1", environment_policy="isolated")]


def test_a_bad_environment_policy_is_the_backends_diagnostic(resource: ServingEndpointResource) -> None:
    c = ctx.create()

    assert resource.create(c, planned(served_entities=[entity("1", environment_policy="conda")])) is None
    assert "environment_policy' must be one of auto, local, isolated" in errors(c)[0].detail


def test_placement_is_sent_as_the_backends_placement_object_and_refused_without_ray(
    resource: ServingEndpointResource, server: AppServer
) -> None:
    placed = entity("1", placement_node_labels={"zone": "b"}, placement_resources={"licensed": 1})
    c = ctx.create()

    assert resource.create(c, planned(served_entities=[placed])) is None

    [(_, body)] = calls(server, "POST")
    assert body["config"]["served_entities"][0]["placement"] == {
        "node_labels": {"zone": "b"},
        "resources": {"licensed": 1},
    }
    assert "placement' needs the Ray engine" in errors(c)[0].detail  # this backend runs --engine local


def test_placement_reads_back_as_the_backend_answers_it_and_none_as_configured() -> None:
    base = {"name": "web", "served_entities": [entity("1", placement_node_labels={})]}
    answered = {"entity_name": "iris", "entity_version": "1", "name": "iris-1"}
    placed = {**answered, "placement": {"node_labels": {"zone": "b"}, "resources": {"licensed": 1.0}}}

    [read] = state_from_detail(base, {"name": "web", "config": {"served_entities": [placed]}}, "")["served_entities"]
    assert (read["placement_node_labels"], read["placement_resources"]) == ({"zone": "b"}, {"licensed": 1.0})
    [read] = state_from_detail(base, {"name": "web", "config": {"served_entities": [answered]}}, "")["served_entities"]
    assert (read["placement_node_labels"], read["placement_resources"]) == ({}, None)


# -- validate --------------------------------------------------------------------------------------
def validation(resource: ServingEndpointResource, **config: object) -> list[tuple[str, list | None]]:
    diags = Diagnostics()
    resource.validate(diags, TYPE, {"name": "web", **config})
    return [(d.summary, d.path) for d in diags.diagnostics]


def bare(version: str = "1", name: str | None = None, **given: object) -> dict:
    """A served_entities block as configured: what is not given is null."""
    unset = dict.fromkeys(
        (
            "workload_size",
            "min_provisioned_concurrency",
            "max_provisioned_concurrency",
            "environment_policy",
            "environment_vars",
            "placement_node_labels",
            "placement_resources",
        )
    )
    return {"name": name, "entity_name": "iris", "entity_version": version, **unset, **given}


def test_validate_accepts_one_entity_without_traffic_config(resource: ServingEndpointResource) -> None:
    assert validation(resource, served_entities=[bare()], traffic_config=None) == []


def test_validate_requires_traffic_config_with_several_entities(resource: ServingEndpointResource) -> None:
    assert validation(resource, served_entities=[bare("1"), bare("2")], traffic_config=None) == [
        ("Missing traffic_config", ["traffic_config"])
    ]


def test_validate_rejects_two_entities_with_one_name(resource: ServingEndpointResource) -> None:
    result = validation(
        resource, served_entities=[bare("1"), bare("2", "iris-1")], traffic_config=routes(("iris-1", 100))
    )
    assert result == [("Duplicate served entity name", ["served_entities", (1,), "name"])]


def test_validate_rejects_a_route_to_an_unknown_entity_and_a_wrong_sum(resource: ServingEndpointResource) -> None:
    result = validation(
        resource, served_entities=[bare("1"), bare("2")], traffic_config=routes(("iris-1", 50), ("blue", 40))
    )
    assert [summary for summary, _ in result] == ["Route to an unknown served entity", "Traffic does not add up to 100"]


def test_validate_skips_what_is_not_known_yet(resource: ServingEndpointResource) -> None:
    unknown_version = {**bare("1"), "entity_version": Unknown}
    traffic = {"routes": [{"served_model_name": "iris-1", "traffic_percentage": Unknown}]}
    assert validation(resource, served_entities=[unknown_version], traffic_config=traffic) == []


def test_validate_rejects_a_timeout_that_is_not_a_duration(resource: ServingEndpointResource) -> None:
    result = validation(resource, served_entities=[bare()], timeouts={"create": "soon", "update": None})
    assert result == [("Invalid timeout", ["timeouts", "create"])]


# -- plan ------------------------------------------------------------------------------------------
def configured_plan(resource: ServingEndpointResource, current: dict | None, proposed: dict, config: dict) -> dict:
    plan_ctx = ConfiguredPlanContext(Diagnostics(), TYPE, changed_fields=set(), config=config)
    return resource.plan(plan_ctx, current, proposed)


def test_plan_of_a_create_fills_the_declared_defaults_and_the_default_traffic(
    resource: ServingEndpointResource,
) -> None:
    config = {"name": "web", "served_entities": [bare()], "traffic_config": None, "tags": None}
    proposed = {
        **planned(),
        "id": Unknown,
        "endpoint_url": Unknown,
        "served_entities": [{**bare(), "scale_to_zero_enabled": None}],
        "traffic_config": Unknown,
    }
    result = configured_plan(resource, None, proposed, config)

    assert result["served_entities"] == [entity("1")]
    assert result["traffic_config"] == routes(("iris-1", 100))
    assert result["id"] == "web"
    assert result["endpoint_url"] == f"{HOST}/serving-endpoints/web/invocations"
    assert result["endpoint_id"] is Unknown and result["state_ready"] is Unknown


def test_plan_of_a_new_version_renames_the_default_entity_and_moves_the_traffic(
    resource: ServingEndpointResource, created: dict
) -> None:
    # Terraform carries the computed name and traffic of the prior state into the proposed state.
    proposed = {**created, "served_entities": [{**entity("1"), "entity_version": "2"}]}
    config = {"name": "web", "served_entities": [bare("2")], "traffic_config": None, "tags": {"team": "ml"}}
    result = configured_plan(resource, created, proposed, config)

    assert result["served_entities"] == [entity("2")]
    assert result["traffic_config"] == routes(("iris-2", 100))
    assert result["config_version"] is Unknown and result["state_ready"] is Unknown
    assert result["endpoint_id"] == "id-web"


def test_plan_of_an_unchanged_endpoint_keeps_every_computed_value(
    resource: ServingEndpointResource, created: dict
) -> None:
    config = {"name": "web", "served_entities": [bare()], "traffic_config": None, "tags": {"team": "ml"}}
    assert configured_plan(resource, created, dict(created), config) == created
    assert resource.plan(PlanContext(Diagnostics(), TYPE, set()), created, dict(created)) == created


def test_plan_of_a_tags_change_keeps_the_config_version(resource: ServingEndpointResource, created: dict) -> None:
    config = {"name": "web", "served_entities": [bare()], "traffic_config": None, "tags": {"tier": "gold"}}
    result = configured_plan(resource, created, {**created, "tags": {"tier": "gold"}}, config)
    assert result["config_version"] == 1
    assert result["state_ready"] is Unknown  # read again after the apply


def test_plan_with_a_version_not_known_yet_leaves_the_name_and_traffic_unknown(
    resource: ServingEndpointResource,
) -> None:
    unknown_version = {**bare(), "entity_version": Unknown}
    config = {"name": "web", "served_entities": [unknown_version], "traffic_config": None, "tags": None}
    proposed = {**planned(), "served_entities": [{**unknown_version, "scale_to_zero_enabled": None}]}
    result = configured_plan(resource, None, proposed, config)
    assert result["served_entities"][0]["name"] is Unknown
    assert result["traffic_config"] is Unknown


def test_plan_keeps_a_configured_traffic_config(resource: ServingEndpointResource) -> None:
    config = {
        "name": "web",
        "served_entities": [bare("1", "blue"), bare("2", "green")],
        "traffic_config": routes(("blue", 80), ("green", 20)),
    }
    proposed = {**split(), "served_entities": [{**bare("1", "blue")}, {**bare("2", "green")}]}
    result = configured_plan(resource, None, proposed, config)
    assert result["traffic_config"] == routes(("blue", 80), ("green", 20))
    assert [e["workload_size"] for e in result["served_entities"]] == ["Small", "Small"]


# -- waiting ---------------------------------------------------------------------------------------
def detail(ready: str, update: str, config_version: int | None = 1, pending: dict | None = None) -> dict:
    answer: dict = {"state": {"ready": ready, "config_update": update}}
    if config_version is not None:
        answer["config"] = {
            "config_version": config_version,
            "served_entities": [{**entity("1"), "state": {"deployment": "DEPLOYMENT_READY"}}],
        }
    if pending is not None:
        answer["pending_config"] = pending
    return answer


def test_progress_is_done_only_when_ready_not_updating_and_serving_the_version() -> None:
    assert rollout_progress(detail("READY", "NOT_UPDATING"), 1).done
    assert not rollout_progress(detail("READY", "NOT_UPDATING"), 2).done  # an older config still serves
    assert not rollout_progress(detail("NOT_READY", "NOT_UPDATING"), 1).done
    assert not rollout_progress(detail("READY", "IN_PROGRESS"), 1).done


def test_progress_fails_with_the_deployment_message_of_a_failed_entity() -> None:
    failed = {
        "served_entities": [
            {**entity("2"), "state": {"deployment": "DEPLOYMENT_FAILED", "deployment_state_message": "OOM"}}
        ]
    }
    progress = rollout_progress(detail("READY", "UPDATE_FAILED", pending=failed), 2)
    assert progress.failure == "served entity 'iris-2' (iris version 2): DEPLOYMENT_FAILED OOM"


def test_plan_of_provisioned_concurrency_fills_no_workload_size(resource: ServingEndpointResource) -> None:
    block = bare(min_provisioned_concurrency=4, max_provisioned_concurrency=8)
    config = {"name": "web", "served_entities": [block], "traffic_config": None, "tags": None}
    proposed = {**planned(), "served_entities": [{**block, "scale_to_zero_enabled": None}], "traffic_config": Unknown}

    result = configured_plan(resource, None, proposed, config)

    assert result["served_entities"] == [
        entity("1", workload_size=None, min_provisioned_concurrency=4, max_provisioned_concurrency=8)
    ]


def test_validate_refuses_half_a_provisioned_range_and_a_size_with_it(resource: ServingEndpointResource) -> None:
    half = validation(resource, served_entities=[bare(min_provisioned_concurrency=4)], traffic_config=None)
    both = validation(
        resource,
        served_entities=[bare(workload_size="Small", min_provisioned_concurrency=4, max_provisioned_concurrency=8)],
        traffic_config=None,
    )

    assert half == [("Incomplete provisioned concurrency", ["served_entities", (0,), "max_provisioned_concurrency"])]
    assert both == [("workload_size with provisioned concurrency", ["served_entities", (0,), "workload_size"])]


def test_create_sends_description_route_optimized_and_provisioned_concurrency(
    resource: ServingEndpointResource, server: AppServer
) -> None:
    provisioned = entity("1", workload_size=None, min_provisioned_concurrency=4, max_provisioned_concurrency=8)
    state = resource.create(
        ctx.create(), planned(served_entities=[provisioned], description="Iris", route_optimized=True)
    )

    [(_, body)] = calls(server, "POST")
    assert body["description"] == "Iris" and body["route_optimized"] is True
    assert body["config"]["served_entities"] == [sent(provisioned)]
    assert (state["description"], state["route_optimized"]) == ("Iris", True)
    assert state["served_entities"] == [provisioned]


# -- e-mail notifications --------------------------------------------------------------------------
OPS, ML = "ops@example.com", "ml@example.com"


def test_create_sends_the_email_notifications_and_reads_them_back_as_configured(
    resource: ServingEndpointResource, server: AppServer
) -> None:
    block = {"on_update_failure": [OPS], "on_update_success": None}
    state = create(resource, planned(email_notifications=block))

    [(_, body)] = calls(server, "POST")
    assert body["email_notifications"] == {"on_update_failure": [OPS]}
    assert state["email_notifications"] == block
    assert resource.read(ctx.read(), state)["email_notifications"] == block


def test_an_empty_block_reads_back_as_configured_and_no_block_as_null(resource: ServingEndpointResource) -> None:
    empty = {"on_update_failure": [], "on_update_success": None}
    state = create(resource, planned(email_notifications=empty))
    assert state["email_notifications"] == empty
    assert resource.import_(ctx.import_(), "web")["email_notifications"] is None


def test_update_of_the_notifications_alone_patches_them_and_rolls_nothing_out(
    resource: ServingEndpointResource, server: AppServer, clock: FakeClock, created: dict
) -> None:
    server.calls.clear()
    clock.sleeps.clear()
    block = {"on_update_failure": [OPS], "on_update_success": [ML]}
    c = ctx.update()
    state = resource.update(c, created, {**created, "email_notifications": block})

    assert errors(c) == []
    assert calls(server, "PUT") == [] and calls(server, "POST") == []
    [(path, body)] = calls(server, "PATCH")
    assert path == "/api/2.0/serving-endpoints/web/notifications"
    assert body == {"email_notifications": {"on_update_failure": [OPS], "on_update_success": [ML]}}
    assert state["email_notifications"] == block and state["config_version"] == 1
    assert clock.sleeps == []
    removed = resource.update(ctx.update(), state, {**state, "email_notifications": None})
    assert removed["email_notifications"] is None


def test_a_bad_address_is_the_backends_error_naming_it_and_the_state_keeps_what_is_there(
    resource: ServingEndpointResource, created: dict
) -> None:
    c = ctx.update()
    state = resource.update(c, created, {**created, "email_notifications": {"on_update_failure": ["ops"]}})

    assert errors(c)[0].summary == (
        "Could not change the e-mail notifications of serving endpoint 'web': INVALID_PARAMETER_VALUE"
    )
    assert "'ops' is not a plain e-mail address" in errors(c)[0].detail
    assert state["email_notifications"] is None


def test_plan_of_a_notifications_change_keeps_the_config_version(
    resource: ServingEndpointResource, created: dict
) -> None:
    block = {"on_update_failure": [OPS], "on_update_success": None}
    config = {"name": "web", "served_entities": [bare()], "traffic_config": None, "tags": {"team": "ml"}}
    result = configured_plan(resource, created, {**created, "email_notifications": block}, config)
    assert result["config_version"] == 1
    assert result["state_ready"] is Unknown  # read again after the apply


# -- inference tables ------------------------------------------------------------------------------
TABLE = {"catalog_name": "main", "schema_name": "serving", "table_name_prefix": "web", "enabled": True}


def test_create_sends_the_inference_tables_and_reads_them_back_as_configured(
    resource: ServingEndpointResource, server: AppServer
) -> None:
    state = create(
        resource,
        planned(auto_capture_config=None, inference_table_config=TABLE, usage_tracking_config={"enabled": True}),
    )

    [(_, body)] = calls(server, "POST")
    assert body["ai_gateway"] == {"inference_table_config": TABLE, "usage_tracking_config": {"enabled": True}}
    assert (state["inference_table_config"], state["usage_tracking_config"]) == (TABLE, {"enabled": True})
    assert resource.read(ctx.read(), state) == state


def test_update_of_the_gateway_tables_alone_puts_the_ai_gateway_with_the_limits_and_rolls_nothing_out(
    resource: ServingEndpointResource, server: AppServer, created: dict
) -> None:
    server.calls.clear()
    limits = [{"calls": 10, "key": "endpoint", "principal": None, "renewal_period": "minute"}]
    base = resource.update(ctx.update(), created, {**created, "rate_limits": limits})
    server.calls.clear()
    c = ctx.update()
    state = resource.update(c, base, {**base, "inference_table_config": TABLE})

    assert errors(c) == [] and calls(server, "POST") == []
    [(path, body)] = calls(server, "PUT")
    assert path == "/api/2.0/serving-endpoints/web/ai-gateway"
    assert body == {
        "rate_limits": [{"calls": 10, "key": "endpoint", "renewal_period": "minute"}],
        **{"inference_table_config": TABLE},
    }
    assert state["inference_table_config"] == TABLE and state["config_version"] == 1


def test_the_legacy_auto_capture_config_is_a_config_update_and_removing_it_switches_it_off(
    resource: ServingEndpointResource, server: AppServer, created: dict
) -> None:
    server.calls.clear()
    state = resource.update(ctx.update(), created, {**created, "auto_capture_config": TABLE})
    [(path, body)] = calls(server, "PUT")
    assert path == "/api/2.0/serving-endpoints/web/config" and body["auto_capture_config"] == TABLE
    assert state["auto_capture_config"] == TABLE and state["config_version"] == 2

    server.calls.clear()
    removed = resource.update(ctx.update(), state, {**state, "auto_capture_config": None})

    [(_, body)] = calls(server, "PUT")
    assert body["auto_capture_config"] == {**TABLE, "enabled": False}
    assert removed["auto_capture_config"] is None


def test_plan_fills_the_table_defaults_as_the_backend(resource: ServingEndpointResource, created: dict) -> None:
    given = {"catalog_name": "main", "schema_name": "serving", "table_name_prefix": None, "enabled": None}
    config = {"name": "web", "served_entities": [bare()], "traffic_config": None, "tags": {"team": "ml"}}
    result = configured_plan(
        resource, created, {**created, "inference_table_config": given}, {**config, "inference_table_config": given}
    )

    assert result["inference_table_config"] == TABLE
    assert result["config_version"] == 1 and result["state_ready"] is Unknown
