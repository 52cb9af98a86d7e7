"""Registry aliases route, as docs/api.md says: set, moved or deleted with the stock MLflow client, an alias
is served (or not) within a few seconds. MLflow's SQL store leaves a version's aliases empty in
`search_model_versions` (mlflow/mlflow#9783), so they are read from the registered model."""

from __future__ import annotations

import time

import pytest
from mlflow import MlflowClient

from rtserve.server.client import BackendClient
from rtserve.server.demo import request_bodies
from rtserve.server.demo_model import register_demo_model

pytestmark = pytest.mark.api
MODEL = "iris-aliases"
SETTLES_WITHIN = 10.0
BODY = request_bodies()["dataframe_split"][1]


@pytest.fixture(scope="module")
def client(admin: BackendClient, mlflow_client_env: str) -> MlflowClient:
    register_demo_model(mlflow_client_env, name=MODEL)
    admin.enable(MODEL)
    return MlflowClient()


def served_by(admin: BackendClient, route: str) -> str | None:
    """The version the alias's URL answers from once it scores, or None while it is 404; waits for a change."""
    response = admin.score(MODEL, route, BODY)
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    return admin.aliases(MODEL).get(route)


def wait_for(admin: BackendClient, route: str, expected: str | None) -> float:
    started = time.monotonic()
    while (seen := served_by(admin, route)) != expected:
        assert time.monotonic() - started < SETTLES_WITHIN, f"{route} answers from {seen}, not {expected}"
        time.sleep(0.2)
    return time.monotonic() - started


def test_an_alias_set_moved_and_deleted_with_the_stock_client_is_served_at_once(
    admin: BackendClient, client: MlflowClient
):
    assert served_by(admin, "champion") is None

    client.set_registered_model_alias(MODEL, "champion", "2")
    wait_for(admin, "champion", "2")

    client.set_registered_model_alias(MODEL, "champion", "1")
    wait_for(admin, "champion", "1")

    client.delete_registered_model_alias(MODEL, "champion")
    wait_for(admin, "champion", None)
    response = admin.score(MODEL, "champion", BODY)
    assert response.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
