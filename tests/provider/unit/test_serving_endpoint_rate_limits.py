"""rtserve_serving_endpoint's `rate_limits` blocks over the real app (fake engine), which parses limits with its
own rules: sent with the create, read back from `ai_gateway`, changed in place with PUT .../ai-gateway and
never by a config update, server refusals as diagnostics; then plan-time defaults and validation."""

from __future__ import annotations

import pytest
from tf.types import Unknown
from tf.utils import Diagnostics

from rtserve.provider.plugin import RtserveProvider
from rtserve.provider.resources.serving_endpoint import ServingEndpointResource
from tests.fakes.app import AppServer
from tests.provider.unit.helpers import FakeClock, errors
from tests.provider.unit.test_serving_endpoint import TYPE, bare, calls, configured_plan, create, ctx, planned

pytestmark = pytest.mark.unit
AI_GATEWAY = "/api/2.0/serving-endpoints/web/ai-gateway"


def limit(calls: int = 100, key: str = "endpoint", principal: str | None = None) -> dict:
    """A `rate_limits` block as planned (defaults filled) and as read back."""
    return {"calls": calls, "key": key, "principal": principal, "renewal_period": "minute"}


def unset(calls: int, **fields: object) -> dict:
    """A `rate_limits` block as configured: unset fields are null."""
    return {"calls": calls, "key": None, "principal": None, "renewal_period": None, **fields}


@pytest.fixture
def resource(provider: RtserveProvider) -> ServingEndpointResource:
    return ServingEndpointResource(provider)


@pytest.fixture
def limited(resource: ServingEndpointResource) -> dict:
    return create(resource, planned(rate_limits=[limit(100), limit(10, "user")]))


# -- create and read -------------------------------------------------------------------------------
def test_create_sends_the_limits_in_the_create_body_and_reads_them_back(
    resource: ServingEndpointResource, server: AppServer, limited: dict
) -> None:
    [(_, body)] = calls(server, "POST")
    assert body["ai_gateway"] == {
        "rate_limits": [
            {"calls": 100, "key": "endpoint", "renewal_period": "minute"},
            {"calls": 10, "key": "user", "renewal_period": "minute"},
        ]
    }
    assert calls(server, "PUT") == []  # the endpoint never serves without its limits
    assert limited["rate_limits"] == [limit(100), limit(10, "user")]
    assert resource.read(ctx.read(), limited) == limited


def test_create_without_limits_sends_no_ai_gateway_and_reads_none(
    resource: ServingEndpointResource, server: AppServer
) -> None:
    state = resource.create(ctx.create(), planned(rate_limits=[]))
    [(_, body)] = calls(server, "POST")
    assert "ai_gateway" not in body
    assert state["rate_limits"] == []


def test_create_refused_for_its_limits_reports_the_backends_message(
    resource: ServingEndpointResource, server: AppServer
) -> None:
    c = ctx.create()
    assert resource.create(c, planned(rate_limits=[limit(5, "user_group")])) is None
    [error] = errors(c)
    assert error.summary == "Could not create serving endpoint 'web': INVALID_PARAMETER_VALUE"
    assert "rtserve has no user groups to limit" in error.detail
    assert server.serving_endpoints() == {}


def test_read_shows_limits_changed_out_of_band(
    resource: ServingEndpointResource, server: AppServer, limited: dict
) -> None:
    gateway = {"rate_limits": [{"calls": 7, "key": "service_principal", "principal": "ci", "renewal_period": "minute"}]}
    server.api("PUT", AI_GATEWAY, json=gateway)
    assert resource.read(ctx.read(), limited)["rate_limits"] == [limit(7, "service_principal", "ci")]
    server.api("PUT", AI_GATEWAY, json={"rate_limits": []})  # no ai_gateway in the detail: no limits
    assert resource.read(ctx.read(), limited)["rate_limits"] == []


def test_import_reads_the_limits(resource: ServingEndpointResource, limited: dict) -> None:
    state = resource.import_(ctx.import_(), "web")
    assert state["rate_limits"] == limited["rate_limits"]


# -- update ----------------------------------------------------------------------------------------
def test_changing_limits_puts_the_ai_gateway_in_place_and_rolls_nothing_out(
    resource: ServingEndpointResource, server: AppServer, clock: FakeClock, limited: dict
) -> None:
    server.calls.clear()
    clock.sleeps.clear()
    c = ctx.update()
    state = resource.update(c, limited, {**limited, "rate_limits": [limit(200), limit(5, "user", "alice")]})

    assert errors(c) == []
    assert calls(server, "PUT") == [
        (
            AI_GATEWAY,
            {
                "rate_limits": [
                    {"calls": 200, "key": "endpoint", "renewal_period": "minute"},
                    {"calls": 5, "key": "user", "principal": "alice", "renewal_period": "minute"},
                ]
            },
        )
    ]
    assert state["rate_limits"] == [limit(200), limit(5, "user", "alice")]
    assert state["config_version"] == limited["config_version"] == 1
    assert clock.sleeps == []


def test_removing_every_block_puts_an_empty_list(
    resource: ServingEndpointResource, server: AppServer, limited: dict
) -> None:
    server.calls.clear()
    state = resource.update(ctx.update(), limited, {**limited, "rate_limits": []})
    assert calls(server, "PUT") == [(AI_GATEWAY, {"rate_limits": []})]
    assert state["rate_limits"] == [] and server.serving_endpoints()["web"]["rate_limits"] == []


def test_the_same_limits_in_another_order_call_nothing(
    resource: ServingEndpointResource, server: AppServer, limited: dict
) -> None:
    server.calls.clear()
    resource.update(ctx.update(), limited, {**limited, "rate_limits": limited["rate_limits"][::-1]})
    assert [m for m, _, _ in server.calls if m != "GET"] == []


def test_limits_and_a_new_version_together_put_both(
    resource: ServingEndpointResource, server: AppServer, limited: dict
) -> None:
    server.calls.clear()
    new_version = {**planned(), "served_entities": [{**limited["served_entities"][0], "entity_version": "2"}]}
    new_version["served_entities"][0]["name"] = "iris-2"
    new_version["traffic_config"] = {"routes": [{"served_model_name": "iris-2", "traffic_percentage": 100}]}
    state = resource.update(ctx.update(), limited, {**new_version, "rate_limits": [limit(50)]})
    assert [path for path, _ in calls(server, "PUT")] == [AI_GATEWAY, "/api/2.0/serving-endpoints/web/config"]
    assert state["rate_limits"] == [limit(50)] and state["config_version"] == 2


def test_limits_refused_by_the_backend_report_its_message_and_keep_what_it_has(
    resource: ServingEndpointResource, server: AppServer, limited: dict
) -> None:
    c = ctx.update()
    state = resource.update(
        c, limited, {**limited, "rate_limits": [limit(5, "user", "alice"), limit(9, "service_principal", "alice")]}
    )
    [error] = errors(c)
    assert error.summary == "Could not change the AI gateway of serving endpoint 'web': INVALID_PARAMETER_VALUE"
    assert "two limits for the same callers" in error.detail
    assert "(HTTP 400 INVALID_PARAMETER_VALUE from PUT /api/2.0/serving-endpoints/web/ai-gateway)" in error.detail
    assert state["rate_limits"] == limited["rate_limits"]  # the next plan shows the change again


# -- plan ------------------------------------------------------------------------------------------
def config(*limits: dict) -> dict:
    return {
        "name": "web",
        "served_entities": [bare()],
        "traffic_config": None,
        "tags": None,
        "rate_limits": list(limits),
    }


def test_plan_fills_the_backends_defaults_and_keeps_what_is_set(resource: ServingEndpointResource) -> None:
    proposed = planned(rate_limits=[unset(100, key=Unknown), unset(5, key="user", principal="alice")])
    result = configured_plan(resource, None, proposed, config(unset(100), unset(5, key="user", principal="alice")))
    assert result["rate_limits"] == [limit(100), limit(5, "user", "alice")]


def test_plan_of_unchanged_limits_in_another_order_keeps_every_computed_value(
    resource: ServingEndpointResource, limited: dict
) -> None:
    reordered = config(unset(10, key="user"), unset(100))
    result = configured_plan(resource, limited, {**limited}, reordered)
    assert result["state_ready"] == "READY" and result["config_version"] == 1


def test_plan_of_a_limits_change_keeps_the_config_version(resource: ServingEndpointResource, limited: dict) -> None:
    result = configured_plan(resource, limited, {**limited}, config(unset(1)))
    assert result["rate_limits"] == [limit(1)]
    assert result["config_version"] == 1
    assert result["state_ready"] is Unknown  # read again after the apply


def test_plan_leaves_a_value_not_known_yet_unknown(resource: ServingEndpointResource) -> None:
    result = configured_plan(resource, None, planned(), config(unset(Unknown, key=Unknown)))
    assert result["rate_limits"] == [{"calls": Unknown, "key": Unknown, "principal": None, "renewal_period": "minute"}]


# -- validate --------------------------------------------------------------------------------------
def problems(resource: ServingEndpointResource, *limits: dict) -> list[tuple[str, str]]:
    diags = Diagnostics()
    resource.validate(diags, TYPE, config(*limits))
    assert all(d.path == ["rate_limits"] for d in diags.diagnostics)
    return [(d.summary, d.detail) for d in diags.diagnostics]


def test_validate_accepts_limits_for_the_endpoint_each_token_and_one_token(resource: ServingEndpointResource) -> None:
    assert problems(resource, unset(100), unset(0, key="user"), unset(5, key="service_principal", principal="ci")) == []


@pytest.mark.parametrize(
    ("block", "detail"),
    [
        (unset(-1), "calls must be a whole number of calls, 0 or more; got -1."),
        (unset(1.5), "calls must be a whole number of calls, 0 or more; got 1.5."),
        (unset(1, key="user_group"), 'key: rtserve has no user groups to limit; use "endpoint"'),
        (unset(1, key="tokens"), "key must be one of endpoint, user, service_principal; got 'tokens'."),
        (unset(1, renewal_period="hour"), "renewal_period must be 'minute' (the only period counted); got 'hour'."),
        (unset(1, principal="ci"), 'principal \'ci\' names a token, so key must be "user" or "service_principal"'),
        (unset(1, key="user", principal=""), "principal must be a token's name; got ''."),
    ],
)
def test_validate_rejects_what_the_backend_would(resource: ServingEndpointResource, block: dict, detail: str) -> None:
    [(summary, text)] = problems(resource, block)
    assert summary == "Invalid rate_limits block"
    assert text.startswith(detail)


def test_validate_rejects_two_limits_for_the_same_callers(resource: ServingEndpointResource) -> None:
    result = problems(
        resource, unset(1), unset(2, key="endpoint"), unset(3, key="user"), unset(4, key="service_principal")
    )
    assert [summary for summary, _ in result] == ["Two rate limits for the same callers"] * 2
    assert result[0][1].startswith(
        "rate_limits has 1 calls per minute for the endpoint and 2 calls per minute for the endpoint;"
    )
    assert "4 calls per minute for each token" in result[1][1]


def test_validate_skips_what_is_not_known_yet(resource: ServingEndpointResource) -> None:
    assert problems(resource, unset(Unknown), unset(2, key=Unknown), unset(3, key="user", principal=Unknown)) == []
    assert problems(resource, unset(1, key="user"), unset(1, key="user", principal=Unknown)) == []
