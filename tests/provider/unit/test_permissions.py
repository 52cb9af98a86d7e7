"""rtserve_permissions: each CRUD operation and its error variants over the real app (fake engine) (whose answers list
inherited entries next to the endpoint's own grants), then validation, planning and the set comparison."""

from __future__ import annotations

import pytest
from tf.iface import PlanContext
from tf.types import Unknown
from tf.utils import Diagnostics

from rtserve.provider.plugin import RtserveProvider
from rtserve.provider.resources.permissions import ACCESS_CONTROL, PermissionsResource
from tests.fakes.app import AppServer
from tests.provider.unit.helpers import Contexts, errors, rejected_read

pytestmark = pytest.mark.unit
TYPE = "rtserve_permissions"
ENDPOINT_ID = "id-web"
ctx = Contexts(TYPE)


def grant(level: str, user: str | None = None, group: str | None = None, sp: str | None = None) -> dict:
    return {"user_name": user, "group_name": group, "service_principal_name": sp, "permission_level": level}


def planned(*grants: dict, endpoint_id: str = ENDPOINT_ID) -> dict:
    return {
        "id": f"/serving-endpoints/{endpoint_id}",
        "serving_endpoint_id": endpoint_id,
        "object_type": "serving-endpoint",
        "access_control": list(grants) or [grant("CAN_QUERY", user="alice")],
    }


def own(server: AppServer, name: str = "web") -> list[dict]:
    return server.serving_endpoints()[name]["acl"]


def same_grants(a: list[dict], b: list[dict]) -> bool:
    return ACCESS_CONTROL.semantically_equal(a, b)


@pytest.fixture
def resource(provider: RtserveProvider) -> PermissionsResource:
    provider.client.create_serving_endpoint(
        "web", {"served_entities": [{"entity_name": "iris", "entity_version": "1"}]}, []
    )
    return PermissionsResource(provider)


@pytest.fixture
def created(resource: PermissionsResource) -> dict:
    c = ctx.create()
    state = resource.create(c, planned(grant("CAN_QUERY", user="alice"), grant("CAN_VIEW", group="users")))
    assert errors(c) == [] and state is not None
    return state


def puts(server: AppServer) -> list[tuple[str, dict]]:
    return [(path, params) for method, path, params in server.calls if method == "PUT"]


# -- create ----------------------------------------------------------------------------------------
def test_create_puts_exactly_the_configured_grants_and_removes_the_creators(
    resource: PermissionsResource, server: AppServer
) -> None:
    assert own(server) == [{"user_name": "admin", "permission_level": "CAN_MANAGE"}]
    c = ctx.create()
    state = resource.create(c, planned(grant("CAN_QUERY", user="alice"), grant("CAN_MANAGE", sp="ci")))

    assert errors(c) == []
    [(path, body)] = puts(server)
    assert path == f"/api/2.0/permissions/serving-endpoints/{ENDPOINT_ID}"
    assert body == {
        "access_control_list": [
            {"permission_level": "CAN_MANAGE", "service_principal_name": "ci"},
            {"permission_level": "CAN_QUERY", "user_name": "alice"},
        ]
    }
    assert own(server) == [
        {"service_principal_name": "ci", "permission_level": "CAN_MANAGE"},
        {"user_name": "alice", "permission_level": "CAN_QUERY"},
    ]
    assert state["id"] == "/serving-endpoints/id-web" and state["object_type"] == "serving-endpoint"
    assert same_grants(state["access_control"], [grant("CAN_QUERY", user="alice"), grant("CAN_MANAGE", sp="ci")])


def test_create_keeps_only_the_endpoints_own_grants_not_the_inherited_ones(
    resource: PermissionsResource, server: AppServer
) -> None:
    # alice's token holds CAN_VIEW everywhere: the answer lists it as inherited next to her grant.
    answer = resource.provider.client.get_serving_endpoint_permissions(ENDPOINT_ID)
    assert any(e.get("group_name") == "admins" for e in answer["access_control_list"])
    state = resource.create(ctx.create(), planned(grant("CAN_QUERY", user="alice")))
    assert state["access_control"] == [grant("CAN_QUERY", user="alice")]


def test_create_naming_an_unknown_token_reports_the_backends_message(
    resource: PermissionsResource, server: AppServer
) -> None:
    c = ctx.create()
    assert resource.create(c, planned(grant("CAN_QUERY", user="nobody"))) is None
    [error] = errors(c)
    assert error.summary == "Could not set the permissions of serving endpoint 'id-web': INVALID_PARAMETER_VALUE"
    assert "principal 'nobody' does not exist" in error.detail and "HTTP 400" in error.detail
    assert own(server) == [{"user_name": "admin", "permission_level": "CAN_MANAGE"}]


def test_create_for_an_unknown_endpoint_id_reports_that_the_api_takes_ids(resource: PermissionsResource) -> None:
    c = ctx.create()
    assert resource.create(c, planned(endpoint_id="web")) is None
    [error] = errors(c)
    assert error.summary == "Could not set the permissions of serving endpoint 'web': RESOURCE_DOES_NOT_EXIST"
    assert "takes an endpoint's id" in error.detail and "not its name" in error.detail


def test_create_without_a_configured_provider_reports_how_to_configure_it() -> None:
    c = ctx.create()
    assert PermissionsResource(RtserveProvider(environ={})).create(c, planned()) is None
    assert errors(c)[0].summary == "The rtserve provider is not configured"


# -- read ------------------------------------------------------------------------------------------
def test_read_of_unchanged_grants_is_the_state(resource: PermissionsResource, created: dict) -> None:
    state = resource.read(ctx.read(), created)
    assert {k: v for k, v in state.items() if k != "access_control"} == {
        k: v for k, v in created.items() if k != "access_control"
    }
    assert same_grants(state["access_control"], created["access_control"])


def test_read_shows_a_grant_added_out_of_band(resource: PermissionsResource, created: dict) -> None:
    body = [{"user_name": "bob", "permission_level": "CAN_MANAGE"}]
    resource.provider.client.request(
        "PATCH", f"/api/2.0/permissions/serving-endpoints/{ENDPOINT_ID}", json={"access_control_list": body}
    )
    state = resource.read(ctx.read(), created)
    assert grant("CAN_MANAGE", user="bob") in state["access_control"]
    assert len(state["access_control"]) == 3


def test_read_returns_none_when_the_endpoint_is_gone(
    resource: PermissionsResource, server: AppServer, created: dict
) -> None:
    server.api("DELETE", "/api/2.0/serving-endpoints/web")
    assert resource.read(ctx.read(), created) is None


def test_read_reports_other_errors_and_keeps_the_state(
    resource: PermissionsResource, server: AppServer, created: dict
) -> None:
    summary = rejected_read(resource, ctx, server, created)
    assert summary == "Could not read the permissions of serving endpoint 'id-web': UNAUTHENTICATED"


# -- update ----------------------------------------------------------------------------------------
def test_update_replaces_the_grants(resource: PermissionsResource, server: AppServer, created: dict) -> None:
    c = ctx.update()
    state = resource.update(c, created, planned(grant("CAN_MANAGE", user="alice")))

    assert errors(c) == []
    assert own(server) == [{"user_name": "alice", "permission_level": "CAN_MANAGE"}]
    assert state["access_control"] == [grant("CAN_MANAGE", user="alice")]


def test_update_refused_by_the_backend_keeps_the_state(
    resource: PermissionsResource, server: AppServer, created: dict
) -> None:
    before = list(own(server))
    c = ctx.update()
    state = resource.update(c, created, planned(grant("CAN_VIEW", group="engineers")))

    assert errors(c)[0].summary == "Could not set the permissions of serving endpoint 'id-web': INVALID_PARAMETER_VALUE"
    assert "group 'engineers' does not exist" in errors(c)[0].detail
    assert state == created and own(server) == before


# -- delete ----------------------------------------------------------------------------------------
def test_delete_removes_every_grant_of_the_endpoint(
    resource: PermissionsResource, server: AppServer, created: dict
) -> None:
    c = ctx.delete()
    resource.delete(c, created)
    assert errors(c) == []
    assert puts(server)[-1][1] == {"access_control_list": []}
    assert own(server) == []


def test_delete_of_an_endpoint_already_gone_is_not_an_error(
    resource: PermissionsResource, server: AppServer, created: dict
) -> None:
    server.api("DELETE", "/api/2.0/serving-endpoints/web")
    c = ctx.delete()
    resource.delete(c, created)
    assert errors(c) == []


def test_delete_reports_other_errors(resource: PermissionsResource, server: AppServer, created: dict) -> None:
    server.rotate_token()
    c = ctx.delete()
    resource.delete(c, created)
    assert errors(c)[0].summary == "Could not remove the permissions of serving endpoint 'id-web': UNAUTHENTICATED"


# -- import ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("import_id", [ENDPOINT_ID, f"/serving-endpoints/{ENDPOINT_ID}"])
def test_import_by_endpoint_id_or_object_id_reads_the_own_grants(
    resource: PermissionsResource, created: dict, import_id: str
) -> None:
    state = resource.import_(ctx.import_(), import_id)
    assert state["id"] == "/serving-endpoints/id-web" and state["serving_endpoint_id"] == ENDPOINT_ID
    assert same_grants(state["access_control"], created["access_control"])


def test_import_of_an_unknown_endpoint_reports_the_backend_error(resource: PermissionsResource) -> None:
    c = ctx.import_()
    assert resource.import_(c, "nope") is None
    assert errors(c)[0].summary == "Cannot import the permissions of serving endpoint 'nope': RESOURCE_DOES_NOT_EXIST"


# -- validate --------------------------------------------------------------------------------------
def validation(resource: PermissionsResource, *blocks: dict) -> list[tuple[str, str]]:
    diags = Diagnostics()
    resource.validate(diags, TYPE, {"serving_endpoint_id": ENDPOINT_ID, "access_control": list(blocks)})
    return [(d.summary, d.detail) for d in diags.diagnostics]


def test_validate_accepts_one_principal_per_block(resource: PermissionsResource) -> None:
    assert validation(resource, grant("CAN_QUERY", user="alice"), grant("CAN_VIEW", group="users")) == []


def test_validate_requires_exactly_one_principal_kind(resource: PermissionsResource) -> None:
    [(summary, detail)] = validation(resource, grant("CAN_QUERY", user="alice", sp="alice"))
    assert summary == "Invalid access_control block"
    assert "exactly one of user_name, group_name, service_principal_name; one names 2" in detail
    [(summary, _)] = validation(resource, grant("CAN_QUERY", user=""))
    assert summary == "Invalid access_control block"


def test_validate_rejects_a_level_that_does_not_exist(resource: PermissionsResource) -> None:
    [(summary, detail)] = validation(resource, grant("IS_OWNER", user="alice"))
    assert summary == "Invalid permission_level"
    assert "must be one of CAN_VIEW, CAN_QUERY, CAN_MANAGE; got 'IS_OWNER' for user_name 'alice'" in detail


def test_validate_refuses_the_admins_group(resource: PermissionsResource) -> None:
    [(summary, detail)] = validation(resource, grant("CAN_VIEW", group="admins"))
    assert summary == "The group admins cannot be granted to"
    assert "always manage every endpoint" in detail


def test_validate_refuses_two_levels_for_one_principal(resource: PermissionsResource) -> None:
    [(summary, detail)] = validation(resource, grant("CAN_VIEW", user="alice"), grant("CAN_MANAGE", user="alice"))
    assert summary == "A principal is granted twice"
    assert "user_name 'alice' has two access_control blocks (CAN_VIEW and CAN_MANAGE)" in detail


def test_validate_skips_what_is_not_known_yet(resource: PermissionsResource) -> None:
    assert validation(resource, grant(Unknown, user="alice"), grant("CAN_VIEW", user=Unknown)) == []
    diags = Diagnostics()
    resource.validate(diags, TYPE, {"serving_endpoint_id": Unknown, "access_control": Unknown})
    assert diags.diagnostics == []


# -- plan and the set comparison -------------------------------------------------------------------
def test_plan_knows_the_id_and_object_type_once_the_endpoint_id_is_known(resource: PermissionsResource) -> None:
    plan_ctx = PlanContext(Diagnostics(), TYPE, set())
    known = resource.plan(plan_ctx, None, {**planned(), "id": Unknown, "object_type": Unknown})
    assert (known["id"], known["object_type"]) == ("/serving-endpoints/id-web", "serving-endpoint")
    unknown = resource.plan(plan_ctx, None, {**planned(), "serving_endpoint_id": Unknown, "id": Unknown})
    assert unknown["id"] is Unknown


def test_the_order_of_access_control_blocks_does_not_matter() -> None:
    a, b = grant("CAN_QUERY", user="alice"), grant("CAN_VIEW", group="users")
    assert ACCESS_CONTROL.semantically_equal([a, b], [b, a])
    assert not ACCESS_CONTROL.semantically_equal([a, b], [a, grant("CAN_MANAGE", group="users")])
    assert not ACCESS_CONTROL.semantically_equal([a, b], [a])
