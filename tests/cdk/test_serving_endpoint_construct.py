"""ServingEndpoint: what it synthesizes (props and defaults), and one test per validation message."""

from __future__ import annotations

import re

import cdktf
import pytest

from rtserve.cdk import (
    EmailNotifications,
    InferenceTable,
    RateLimit,
    RtserveStack,
    ServedEntity,
    ServingEndpoint,
    WorkloadSize,
)
from tests.cdk.conftest import only, synth

pytestmark = pytest.mark.unit
TYPE = "rtserve_serving_endpoint"


def blue_green(**overrides: object) -> dict:
    props: dict = {
        "name": "iris",
        "served_entities": [
            ServedEntity(model="iris-classifier", version="1", name="blue"),
            ServedEntity(model="iris-classifier", version="2", name="green", workload_size="Medium"),
        ],
        "traffic": {"blue": 80, "green": 20},
    }
    return props | overrides


# -- synthesis -------------------------------------------------------------------------------------
def test_one_entity_synthesizes_its_defaults_and_leaves_the_traffic_to_the_provider(stack: RtserveStack) -> None:
    ServingEndpoint(stack, "iris", name="iris", served_entities=[ServedEntity(model="iris-classifier", version=1)])
    assert only(synth(stack), TYPE) == {
        "name": "iris",
        "served_entities": [
            {
                "entity_name": "iris-classifier",
                "entity_version": "1",
                "workload_size": "Small",
                "scale_to_zero_enabled": False,
            }
        ],
        "timeouts": {"create": "20m", "update": "20m"},
    }


def test_a_traffic_split_synthesizes_named_entities_and_routes_in_order(stack: RtserveStack) -> None:
    ServingEndpoint(stack, "iris", **blue_green(tags={"team": "ml", "costCenter": "42"}, timeout="5m"))
    resource = only(synth(stack), TYPE)
    assert [(e["name"], e["entity_version"], e["workload_size"]) for e in resource["served_entities"]] == [
        ("blue", "1", "Small"),
        ("green", "2", "Medium"),
    ]
    assert resource["traffic_config"] == {
        "routes": [
            {"served_model_name": "blue", "traffic_percentage": 80},
            {"served_model_name": "green", "traffic_percentage": 20},
        ]
    }
    assert resource["tags"] == {"team": "ml", "costCenter": "42"}  # keys as written, not snake_cased
    assert resource["timeouts"] == {"create": "5m", "update": "5m"}


def test_scale_to_zero_and_the_size_enum(stack: RtserveStack) -> None:
    entity = ServedEntity("iris-classifier", "3", WorkloadSize.LARGE, scale_to_zero=True)
    ServingEndpoint(stack, "iris", name="iris", served_entities=[entity])
    [synthesized] = only(synth(stack), TYPE)["served_entities"]
    assert (synthesized["workload_size"], synthesized["scale_to_zero_enabled"]) == ("Large", True)
    assert entity.served_name == "iris-classifier-3"


def test_traffic_may_name_an_unnamed_entity_by_its_default_name(stack: RtserveStack) -> None:
    entities = [ServedEntity("iris-classifier", "1"), ServedEntity("iris-classifier", "2")]
    ServingEndpoint(
        stack, "iris", name="iris", served_entities=entities, traffic={"iris-classifier-1": 90, "iris-classifier-2": 10}
    )
    routes = only(synth(stack), TYPE)["traffic_config"]["routes"]
    assert [r["served_model_name"] for r in routes] == ["iris-classifier-1", "iris-classifier-2"]


def test_rate_limits_synthesize_with_their_defaults(stack: RtserveStack) -> None:
    limits = [RateLimit(calls=100), RateLimit(calls=10, key="user"), RateLimit(5, "service_principal", "ci")]
    ServingEndpoint(stack, "iris", **blue_green(rate_limits=limits))
    assert only(synth(stack), TYPE)["rate_limits"] == [
        {"calls": 100, "key": "endpoint", "renewal_period": "minute"},
        {"calls": 10, "key": "user", "renewal_period": "minute"},
        {"calls": 5, "key": "service_principal", "principal": "ci", "renewal_period": "minute"},
    ]


def test_no_rate_limits_by_default(stack: RtserveStack) -> None:
    endpoint = ServingEndpoint(stack, "iris", **blue_green())
    assert "rate_limits" not in only(synth(stack), TYPE)
    assert endpoint.rate_limits == []


def test_attributes_are_references(stack: RtserveStack) -> None:
    endpoint = ServingEndpoint(stack, "iris", **blue_green())
    cdktf.TerraformOutput(stack, "url", value=endpoint.endpoint_url)
    cdktf.TerraformOutput(stack, "ready", value=endpoint.state_ready)
    address = f"{TYPE}.{endpoint.resource.friendly_unique_id}"
    outputs = synth(stack)["output"]
    assert outputs["url"]["value"] == f"${{{address}.endpoint_url}}"
    assert outputs["ready"]["value"] == f"${{{address}.state_ready}}"


def test_references_are_left_to_terraform(stack: RtserveStack) -> None:
    version = cdktf.TerraformVariable(stack, "version", type="string").string_value
    share = cdktf.TerraformVariable(stack, "share", type="number").number_value
    entities = [ServedEntity("iris-classifier", "1", name="blue"), ServedEntity("iris-classifier", version)]
    ServingEndpoint(
        stack, "iris", name="iris", served_entities=entities, traffic={"blue": share, "iris-classifier-2": 10}
    )
    [_, second] = only(synth(stack), TYPE)["served_entities"]
    assert second["entity_version"] == "${var.version}"


# -- validation ------------------------------------------------------------------------------------
def fails(stack: RtserveStack, message: str, error: type[Exception] = ValueError, **props: object) -> None:
    with pytest.raises(error, match=re.escape(message)):
        ServingEndpoint(stack, "iris", **blue_green(**props))


def test_traffic_must_sum_to_100(stack: RtserveStack) -> None:
    fails(
        stack,
        "ServingEndpoint: traffic must sum to 100; {'blue': 80, 'green': 30} sums to 110",
        traffic={"blue": 80, "green": 30},
    )


def test_traffic_must_name_served_entities(stack: RtserveStack) -> None:
    fails(
        stack,
        "ServingEndpoint: traffic names 'red', which is not a served entity of this endpoint (blue, green)",
        traffic={"blue": 80, "red": 20},
    )


def test_traffic_shares_are_whole_percentages(stack: RtserveStack) -> None:
    fails(
        stack,
        "ServingEndpoint: traffic['green'] must be a whole number from 0 to 100; got 20.5",
        traffic={"blue": 80, "green": 20.5},
    )


def test_traffic_is_required_with_several_entities(stack: RtserveStack) -> None:
    fails(
        stack,
        "ServingEndpoint: traffic is required with several served entities: map each name to its share, "
        "e.g. traffic={'blue': 50, 'green': 50}",
        traffic=None,
    )


def test_served_entity_names_are_unique(stack: RtserveStack) -> None:
    twice = [ServedEntity("iris-classifier", "1"), ServedEntity("other", "1", name="iris-classifier-1")]
    fails(
        stack,
        "ServingEndpoint: served entity names must be unique; 'iris-classifier-1' is used twice",
        served_entities=twice,
        traffic={"iris-classifier-1": 100},
    )


def test_at_least_one_served_entity(stack: RtserveStack) -> None:
    fails(stack, "ServingEndpoint: served_entities needs at least one ServedEntity", served_entities=[], traffic=None)


def test_served_entities_must_be_served_entity_objects(stack: RtserveStack) -> None:
    fails(
        stack,
        "ServingEndpoint: served_entities[0] must be a ServedEntity; got {'model': 'm'}",
        TypeError,
        served_entities=[{"model": "m"}],
        traffic=None,
    )


def test_the_endpoint_name_follows_the_backends_rule(stack: RtserveStack) -> None:
    fails(stack, "ServingEndpoint: name must be 1 to 63 letters, digits, '-' or '_'; got 'iris ab'", name="iris ab")


def test_tags_are_strings(stack: RtserveStack) -> None:
    fails(stack, "ServingEndpoint: tags must map non-empty strings to strings; got 'tier': 1", tags={"tier": 1})


def test_the_timeout_is_a_duration(stack: RtserveStack) -> None:
    fails(stack, "ServingEndpoint: timeout must be a duration such as '90s', '20m' or '1h30m'; got '20'", timeout="20")


def test_rate_limits_must_be_rate_limit_objects(stack: RtserveStack) -> None:
    fails(
        stack,
        "ServingEndpoint: rate_limits[0] must be a RateLimit; got {'calls': 1}",
        TypeError,
        rate_limits=[{"calls": 1}],
    )


def test_rate_limits_are_a_list(stack: RtserveStack) -> None:
    fails(
        stack,
        "ServingEndpoint: rate_limits must be a list of RateLimit, e.g. [RateLimit(calls=100)]; got RateLimit(",
        TypeError,
        rate_limits=RateLimit(1),
    )


def test_rate_limits_for_the_same_callers_are_refused(stack: RtserveStack) -> None:
    fails(
        stack,
        "ServingEndpoint: rate_limits has two limits for the same callers (RateLimit(calls=10, key='user', "
        "principal=None, renewal_period='minute') and RateLimit(calls=20, key='service_principal', principal=None, "
        "renewal_period='minute'))",
        rate_limits=[RateLimit(10, "user"), RateLimit(20, "service_principal"), RateLimit(30, "user", "ci")],
    )


def test_rate_limits_depending_on_a_reference_are_left_to_terraform(stack: RtserveStack) -> None:
    calls = cdktf.TerraformVariable(stack, "calls", type="number").number_value
    key = cdktf.TerraformVariable(stack, "key", type="string").string_value
    ServingEndpoint(stack, "iris", **blue_green(rate_limits=[RateLimit(calls), RateLimit(5, key)]))
    [first, second] = only(synth(stack), TYPE)["rate_limits"]
    assert (first["calls"], second["key"]) == ("${var.calls}", "${var.key}")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"calls": -1}, "RateLimit: calls must be a whole number of calls per minute, 0 or more; got -1"),
        ({"calls": 1.5}, "RateLimit: calls must be a whole number of calls per minute, 0 or more; got 1.5"),
        ({"calls": True}, "RateLimit: calls must be a whole number of calls per minute, 0 or more; got True"),
        (
            {"calls": 1, "key": "user_group"},
            "RateLimit: key must be 'endpoint' (every caller together), 'user' or 'service_principal' (each token); "
            "got 'user_group'",
        ),
        (
            {"calls": 1, "principal": "ci"},
            "RateLimit: principal 'ci' names a token, so key must be 'user' or 'service_principal'; got key 'endpoint'",
        ),
        ({"calls": 1, "key": "user", "principal": ""}, "RateLimit: principal must be a token's name; got ''"),
        (
            {"calls": 1, "renewal_period": "hour"},
            "RateLimit: renewal_period must be 'minute' (the only period counted); got 'hour'",
        ),
    ],
)
def test_a_rate_limit_checks_itself(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        RateLimit(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"model": "", "version": "1"},
            "ServedEntity: model must be a non-empty string (the registered model); got ''",
        ),
        (
            {"model": "m", "version": "latest"},
            "ServedEntity: version must be a model version number such as '2'; got 'latest'",
        ),
        ({"model": "m", "version": 0}, "ServedEntity: version must be a model version number such as '2'; got 0"),
        (
            {"model": "m", "version": "1", "workload_size": "XL"},
            "ServedEntity: workload_size must be one of Small, Medium, Large; got 'XL'",
        ),
        (
            {"model": "m", "version": "1", "name": "a/b"},
            "ServedEntity: name must be 1 to 63 letters, digits, '-' or '_'; got 'a/b'",
        ),
    ],
)
def test_a_served_entity_checks_itself(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        ServedEntity(**kwargs)


def test_nothing_is_created_when_validation_fails(stack: RtserveStack) -> None:
    with pytest.raises(ValueError):
        ServingEndpoint(stack, "iris", **blue_green(traffic={"blue": 1}))
    assert TYPE not in synth(stack).get("resource", {})


def test_provisioned_concurrency_replaces_the_workload_size(stack: RtserveStack) -> None:
    ServingEndpoint(
        stack,
        "e",
        name="e",
        served_entities=[ServedEntity("iris", 1, provisioned_concurrency=(4, 8))],
        description="Iris, provisioned",
        route_optimized=True,
    )

    resource = only(synth(stack), "rtserve_serving_endpoint")

    [entity] = resource["served_entities"]
    assert (entity["min_provisioned_concurrency"], entity["max_provisioned_concurrency"]) == (4, 8)
    assert "workload_size" not in entity
    assert (resource["description"], resource["route_optimized"]) == ("Iris, provisioned", True)


def test_environment_policy_is_rendered_when_given_and_left_to_the_server_by_default(stack: RtserveStack) -> None:
    ServingEndpoint(
        stack,
        "e",
        name="e",
        served_entities=[ServedEntity("iris", 1, name="own", environment_policy="isolated"), ServedEntity("iris", 2)],
        traffic={"own": 50, "iris-2": 50},
    )

    own, default = only(synth(stack), "rtserve_serving_endpoint")["served_entities"]

    assert own["environment_policy"] == "isolated"
    assert "environment_policy" not in default


def test_a_bad_environment_policy_is_refused() -> None:
    with pytest.raises(ValueError, match=re.escape("environment_policy must be one of auto, local, isolated or None")):
        ServedEntity("iris", 1, environment_policy="conda")


def test_environment_vars_synthesize_as_given_with_secrets_as_references(stack: RtserveStack) -> None:
    variables = {"LOG_LEVEL": "debug", "API_TOKEN": "{{secrets/team/api-token}}"}
    ServingEndpoint(stack, "e", name="e", served_entities=[ServedEntity("iris", 1, environment_vars=variables)])

    [entity] = only(synth(stack), "rtserve_serving_endpoint")["served_entities"]

    assert entity["environment_vars"] == variables


def test_no_environment_vars_by_default_and_bad_ones_are_refused(stack: RtserveStack) -> None:
    ServingEndpoint(stack, "e", name="e", served_entities=[ServedEntity("iris", 1)])

    [entity] = only(synth(stack), "rtserve_serving_endpoint")["served_entities"]

    assert "environment_vars" not in entity
    with pytest.raises(ValueError, match="environment_vars must map variable names to strings"):
        ServedEntity("iris", 1, environment_vars={"THREADS": 1})  # type: ignore[dict-item]


def test_placement_synthesizes_as_given_and_bad_values_are_refused(stack: RtserveStack) -> None:
    placed = ServedEntity("iris", 1, placement_node_labels={"zone": "b"}, placement_resources={"licensed": 1})
    ServingEndpoint(stack, "e", name="e", served_entities=[placed])

    [entity] = only(synth(stack), "rtserve_serving_endpoint")["served_entities"]

    assert (entity["placement_node_labels"], entity["placement_resources"]) == ({"zone": "b"}, {"licensed": 1})
    assert ServedEntity("iris", 2)._binding().placement_node_labels is None
    with pytest.raises(ValueError, match="placement_node_labels must map label keys to strings"):
        ServedEntity("iris", 1, placement_node_labels={"zone": 2})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="placement_resources must map Ray resource names to amounts above 0"):
        ServedEntity("iris", 1, placement_resources={"licensed": 0})


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"provisioned_concurrency": (4, 6)}, "provisioned_concurrency must be (min, max): multiples of 4"),
        ({"provisioned_concurrency": (8, 4)}, "0 <= min <= max"),
        ({"provisioned_concurrency": (0, 128)}, "4 <= max <= 64"),
        (
            {"provisioned_concurrency": (4, 8), "workload_size": "Small"},
            "give workload_size or provisioned_concurrency",
        ),
    ],
)
def test_a_bad_provisioned_concurrency_is_refused(arguments: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        ServedEntity("iris", 1, **arguments)


def test_email_notifications_render_their_lists_and_none_renders_no_block(stack: RtserveStack) -> None:
    notified = EmailNotifications(on_update_failure=["ops@example.com"], on_update_success=("ml@example.com",))
    ServingEndpoint(stack, "e", name="e", served_entities=[ServedEntity("iris", 1)], email_notifications=notified)
    ServingEndpoint(stack, "f", name="f", served_entities=[ServedEntity("iris", 1)])

    resources = {resource["name"]: resource for resource in synth(stack)["resource"][TYPE].values()}

    assert resources["e"]["email_notifications"] == {
        "on_update_failure": ["ops@example.com"],
        "on_update_success": ["ml@example.com"],
    }
    assert "email_notifications" not in resources["f"]
    only_failure = EmailNotifications(on_update_failure=["ops@example.com"])._binding()
    assert only_failure.on_update_success is None


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"on_update_failure": ["ops"]}, "'ops' is not a plain e-mail address"),
        ({"on_update_success": "ops@example.com"}, "'on_update_success' must be a list of e-mail addresses"),
        ({"on_update_success": [f"u{i}@example.com" for i in range(51)]}, "at most 50"),
    ],
)
def test_email_notifications_refuse_what_the_backend_would(arguments: dict, message: str) -> None:
    with pytest.raises(ValueError, match="^EmailNotifications: ") as raised:
        EmailNotifications(**arguments)
    assert message in str(raised.value)


def test_email_notifications_must_be_an_email_notifications(stack: RtserveStack) -> None:
    with pytest.raises(ValueError, match="email_notifications must be an EmailNotifications"):
        ServingEndpoint(
            stack,
            "e",
            name="e",
            served_entities=[ServedEntity("iris", 1)],
            email_notifications={"on_update_failure": ["ops@example.com"]},  # type: ignore[arg-type]
        )


# -- inference tables ------------------------------------------------------------------------------
def test_inference_tables_render_their_blocks_and_none_renders_none(stack: RtserveStack) -> None:
    entities = [ServedEntity("iris", 1)]
    ServingEndpoint(
        stack,
        "g",
        name="g",
        served_entities=entities,
        inference_table=InferenceTable("main", "serving"),
        usage_tracking=True,
    )
    ServingEndpoint(
        stack, "l", name="l", served_entities=entities, auto_capture=InferenceTable("main", "serving", "iris")
    )
    ServingEndpoint(stack, "n", name="n", served_entities=entities)

    resources = {resource["name"]: resource for resource in synth(stack)["resource"][TYPE].values()}

    assert resources["g"]["inference_table_config"] == {
        "catalog_name": "main",
        "schema_name": "serving",
        "enabled": True,
    }
    assert resources["g"]["usage_tracking_config"] == {"enabled": True}
    assert resources["l"]["auto_capture_config"] == {
        "catalog_name": "main",
        "schema_name": "serving",
        "table_name_prefix": "iris",
        "enabled": True,
    }
    assert not {"inference_table_config", "usage_tracking_config", "auto_capture_config"} & set(resources["n"])


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"catalog": "../etc", "schema": "s"}, "'catalog' must be 1 to 128 letters, digits"),
        ({"catalog": "main", "schema": "s", "table_name_prefix": "a/b"}, "'table_name_prefix' must be"),
        ({"catalog": "main", "schema": "s", "enabled": "yes"}, "enabled must be True or False"),
    ],
)
def test_an_inference_table_refuses_what_the_backend_would(arguments: dict, message: str) -> None:
    with pytest.raises(ValueError, match="^InferenceTable: ") as raised:
        InferenceTable(**arguments)
    assert message in str(raised.value)


def test_two_payload_tables_and_a_usage_tracking_that_is_not_a_bool_are_refused(stack: RtserveStack) -> None:
    table = InferenceTable("main", "serving")
    with pytest.raises(ValueError, match="not both enabled"):
        ServingEndpoint(
            stack, "t", name="t", served_entities=[ServedEntity("iris", 1)], inference_table=table, auto_capture=table
        )
    with pytest.raises(ValueError, match="usage_tracking must be True or False"):
        ServingEndpoint(stack, "u", name="u", served_entities=[ServedEntity("iris", 1)], usage_tracking="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="inference_table must be an InferenceTable"):
        ServingEndpoint(
            stack, "v", name="v", served_entities=[ServedEntity("iris", 1)], inference_table={"catalog": "m"}
        )  # type: ignore[arg-type]
