"""Serving endpoint configs (GA API): what is accepted, what is refused and why, and the traffic draw."""

import random
from collections import Counter

import pytest

from rtserve.server.control.endpoint import TRAFFIC_SPLIT, serving_endpoint
from rtserve.server.control.serving_config import EndpointConfig, parse_config, parse_tags
from rtserve.server.errors import ApiError

pytestmark = pytest.mark.unit


def entity(version: str = "1", **extra) -> dict:
    return {"entity_name": "iris", "entity_version": version, **extra}


def routes(**shares: int) -> dict:
    return {"routes": [{"served_model_name": name, "traffic_percentage": share} for name, share in shares.items()]}


def test_one_served_entity_gets_defaults_and_all_the_traffic():
    config = parse_config({"served_entities": [entity()]}, config_version=1)
    (served,) = config.served_entities
    assert (served.name, served.workload_size, served.scale_to_zero_enabled) == ("iris-1", "Small", False)
    assert config.traffic == (("iris-1", 100),)


def test_the_legacy_served_models_form_and_integer_versions_are_accepted():
    config = parse_config({"served_models": [{"model_name": "iris", "model_version": 2}]}, config_version=3)
    assert config.served_entities[0].key == ("iris", "2")
    assert config.config_version == 3


def test_a_served_entity_may_choose_its_environment_policy():
    config = parse_config({"served_entities": [entity("1", environment_policy="isolated")]}, config_version=1)

    assert config.served_entities[0].environment_policy == "isolated"
    assert parse_config({"served_entities": [entity()]}, config_version=1).served_entities[0].environment_policy is None


def test_a_served_entity_may_place_its_replicas_with_node_labels_and_resources():
    placement = {"node_labels": {"example.com/zone": "b", "tier": "fast"}, "resources": {"accelerator": 1, "slot": 0.5}}
    config = parse_config({"served_entities": [entity("1", placement=placement)]}, config_version=1)

    assert config.served_entities[0].placement is not None
    assert config.served_entities[0].placement.to_wire() == placement
    assert config.served_entities[0].compute.placement == config.served_entities[0].placement
    empty = {"node_labels": {}, "resources": None}
    assert (
        parse_config({"served_entities": [entity("1", placement=empty)]}, config_version=1).served_entities[0].placement
        is None
    )


def test_a_config_survives_its_stored_form():
    config = parse_config(
        {
            "served_entities": [
                entity("1", name="a"),
                entity("2", name="b", workload_size="Large", environment_policy="isolated"),
                entity("3", name="c", placement={"node_labels": {"zone": "b"}, "resources": {"accelerator": 2}}),
            ],
            "traffic_config": routes(a=30, b=60, c=10),
        },
        config_version=2,
    )
    assert EndpointConfig.from_stored(config.to_stored()) == config


@pytest.mark.parametrize(
    ("config", "words"),
    [
        (None, "'config' must be an object"),
        ({}, "exactly one"),
        ({"served_entities": [entity()], "served_models": []}, "exactly one"),
        ({"served_entities": "iris"}, "non-empty list"),
        ({"served_entities": [entity()] * 16}, "at most 15"),
        ({"served_entities": ["iris"]}, "must be an object"),
        ({"served_entities": [{"entity_version": "1"}]}, "entity_name' is required"),
        ({"served_entities": [entity("v1")]}, "version number"),
        ({"served_entities": [entity("1", workload_size="small")]}, "Small, Medium, Large"),
        ({"served_entities": [entity("1", scale_to_zero_enabled="yes")]}, "true or false"),
        ({"served_entities": [entity("1", environment_vars=["A=1"])]}, "environment_vars' must be an object"),
        ({"served_entities": [entity("1", environment_vars={"1A": "1"})]}, "environment_vars.1A"),
        ({"served_entities": [entity("1", environment_vars={"A": 1})]}, "environment_vars.A' must be a string"),
        ({"served_entities": [entity("1", environment_vars={"RTSERVE_X": "1"})]}, "belong to rtserve"),
        ({"served_entities": [entity("1", environment_vars={"A": "x{{secrets/s/k}}"})]}, "whole value"),
        ({"served_entities": [entity("1", environment_vars={"A": "{{secrets/s}}"})]}, "whole value"),
        (
            {
                "served_entities": [
                    entity("1", name="a", environment_vars={"A": "1"}),
                    entity("1", name="b", environment_vars={"A": "2"}),
                ],
                "traffic_config": routes(a=50, b=50),
            },
            "different environment_vars",
        ),
        ({"served_entities": [entity("1", workload_type="GPU_SMALL")]}, "CPU"),
        (
            {"served_entities": [entity("1", placement=["gpu"])]},
            "'config.served_entities[0].placement' must be an object",
        ),
        (
            {"served_entities": [entity("1", placement={"zone": "b"})]},
            "'config.served_entities[0].placement.zone' is not",
        ),
        (
            {"served_entities": [entity("1", placement={"resources": {"accelerator": -1}})]},
            "'config.served_entities[0].placement.resources.accelerator' must be a number above 0",
        ),
        ({"served_entities": [entity("1", placement={"resources": {"a": 1.5}})]}, "whole above 1"),
        ({"served_entities": [entity("1", placement={"resources": {"a": True}})]}, "placement.resources.a"),
        ({"served_entities": [entity("1", placement={"resources": {"CPU": 2}})]}, "placement.resources': 'CPU'"),
        ({"served_entities": [entity("1", placement={"node_labels": {"a b": "x"}})]}, "not a label key"),
        ({"served_entities": [entity("1", placement={"node_labels": {"zone": "!b"}})]}, "node_labels.zone' must be"),
        ({"served_entities": [entity("1", placement={"node_labels": {"zone": 1}})]}, "node_labels.zone' must be"),
        (
            {
                "served_entities": [
                    entity("1", name="a", placement={"node_labels": {"zone": "a"}}),
                    entity("1", name="b"),
                ],
                "traffic_config": routes(a=50, b=50),
            },
            "'a' and 'b' serve version 1 of 'iris' with different placement",
        ),
        (
            {"served_entities": [entity("1", environment_policy="conda")]},
            "'config.served_entities[0].environment_policy' must be one of auto, local, isolated; got 'conda'",
        ),
        ({"served_entities": [entity("1", name="no spaces")]}, "letters, digits"),
        ({"served_entities": [entity("1", name="a"), entity("2", name="a")]}, "unique"),
        ({"served_entities": [entity("1"), entity("2")]}, "traffic_config' is required"),
        ({"served_entities": [entity()], "traffic_config": {"routes": []}}, "traffic_config' must be"),
        ({"served_entities": [entity()], "traffic_config": routes(other=100)}, "must name a served entity"),
        ({"served_entities": [entity()], "traffic_config": routes(**{"iris-1": 101})}, "0 to 100"),
        (
            {"served_entities": [entity("1"), entity("2")], "traffic_config": routes(**{"iris-1": 60, "iris-2": 30})},
            "sum to 90",
        ),
    ],
)
def test_a_bad_config_is_refused_with_a_message_naming_the_problem(config, words: str):
    with pytest.raises(ApiError) as refused:
        parse_config(config, config_version=1)
    assert refused.value.error_code == "INVALID_PARAMETER_VALUE"
    assert words in refused.value.message


def test_requests_are_drawn_by_the_traffic_percentages_and_a_zero_share_gets_none():
    config = parse_config(
        {
            "served_entities": [entity("1", name="a"), entity("2", name="b"), entity("3", name="c")],
            "traffic_config": routes(a=80, b=20, c=0),
        },
        config_version=1,
    )
    chooser = random.Random(7)
    split = serving_endpoint("e", "id", config, None, (), ()).route(TRAFFIC_SPLIT)
    assert split is not None
    drawn = Counter(split.pick(chooser).served_name for _ in range(10_000))
    assert drawn["c"] == 0
    assert 7_800 < drawn["a"] < 8_200


def test_tags_need_string_keys_and_values():
    assert parse_tags([{"key": "team", "value": "ml"}, {"key": "flag"}]) == [
        {"key": "team", "value": "ml"},
        {"key": "flag"},
    ]
    for bad in ("team", [{"value": "x"}], [{"key": ""}], [{"key": "a", "value": 1}]):
        with pytest.raises(ApiError):
            parse_tags(bad)


def test_a_version_several_entities_serve_runs_in_the_environment_that_isolates_most():
    from rtserve.server.control.serving_endpoints import ServingEndpointState, environment_policy

    def endpoint(name: str, *policies: str | None) -> ServingEndpointState:
        entities = [entity("1", name=f"e{i}", environment_policy=p) for i, p in enumerate(policies)]
        shares = {f"e{i}": 100 // len(policies) + (100 % len(policies) if i == 0 else 0) for i in range(len(policies))}
        config = parse_config({"served_entities": entities, "traffic_config": routes(**shares)}, config_version=1)
        return ServingEndpointState(name, name, "admin", 0, 0, config, None, None)

    assert environment_policy([endpoint("a", None)], ("iris", "1")) is None
    assert environment_policy([endpoint("a", "local", None)], ("iris", "1")) == "local"
    assert environment_policy([endpoint("a", "local"), endpoint("b", "auto")], ("iris", "1")) == "auto"
    assert environment_policy([endpoint("a", "isolated", "local")], ("iris", "1")) == "isolated"
    assert environment_policy([endpoint("a", "isolated")], ("iris", "2")) is None
