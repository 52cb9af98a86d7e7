"""The scoring client's pure parts: where an endpoint name sends requests, and predictions as JSON text."""

from __future__ import annotations

import json

import pytest

from rtserve.sql.scoring import AiQueryError, EndpointClient, invocations_path, json_texts

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("endpoint", "path"),
    [
        ("iris", "/serving-endpoints/iris/invocations"),
        ("iris-classifier/Production", "/model/iris-classifier/Production/invocations"),
        ("iris-classifier/3", "/model/iris-classifier/3/invocations"),
        ("a b/champion", "/model/a%20b/champion/invocations"),
    ],
)
def test_a_name_is_a_serving_endpoint_and_model_slash_route_a_model_endpoint(endpoint: str, path: str):
    assert invocations_path(endpoint) == path


def test_a_name_with_an_empty_side_is_refused_with_the_forms_that_work():
    with pytest.raises(AiQueryError, match="neither a serving endpoint's name nor MODEL/ROUTE"):
        invocations_path("iris-classifier/")


@pytest.mark.parametrize(
    "values",
    [[0, 2, 1], [1.5, -2.0, 1e-07, 123456789.25], [], [True, False], ["a, b", "c"], [{"label": "x"}, [1, 2]], [None]],
)
def test_predictions_become_one_json_text_each(values: list):
    texts = json_texts(values)
    assert [json.loads(text) for text in texts] == values


def test_a_client_without_host_or_token_says_which_variable_to_set():
    with pytest.raises(AiQueryError, match="set RTSERVE_HOST"):
        EndpointClient(environ={})
    with pytest.raises(AiQueryError, match="set RTSERVE_TOKEN"):
        EndpointClient(environ={"DATABRICKS_HOST": "http://127.0.0.1:9"})
