"""The three data sources: what they return, and how errors reach Terraform."""

from __future__ import annotations

import pytest

from rtserve.provider.data_sources.endpoint_status import EndpointStatusDataSource
from rtserve.provider.data_sources.model_versions import ModelVersionsDataSource
from rtserve.provider.data_sources.version_aliases import VersionAliasesDataSource
from rtserve.provider.plugin import RtserveProvider
from tests.fakes.app import AppServer
from tests.provider.unit.helpers import HOST, Contexts, errors

pytestmark = pytest.mark.unit


@pytest.fixture
def serving(server: AppServer) -> AppServer:
    for version, stage in {"1": "Production", "2": "Staging", "3": "Staging"}.items():
        server.set_stage("iris", version, stage)
    server.enable("iris")
    server.update_compute("iris", "Staging", "Medium", scale_to_zero=True)
    return server


def test_endpoint_status_reports_state_compute_and_versions(provider: RtserveProvider, serving: AppServer) -> None:
    ctx = Contexts("rtserve_endpoint_status").data()
    state = EndpointStatusDataSource(provider).read(ctx, {"registered_model_name": "iris"})

    assert errors(ctx) == []
    assert state["enabled"] is True
    assert state["state"] == "ENDPOINT_STATE_READY"
    staging = next(config for config in state["compute_config"] if config["stage"] == "Staging")
    assert staging["creation_timestamp"] > 0
    assert {k: v for k, v in staging.items() if k != "creation_timestamp"} == {
        "stage": "Staging",
        "workload_size": "Medium",
        "scale_to_zero_enabled": True,
        "user_id": "admin",
    }
    assert [v["version"] for v in state["versions"]] == ["1", "2", "3"]
    assert state["versions"][1]["service_state"] == "SERVICE_STATE_READY"
    assert state["versions"][1]["workload_size"] == "Medium"
    assert state["invocation_urls"]["Production"] == f"{HOST}/model-endpoint/iris/Production/invocations"


def test_endpoint_status_of_a_model_without_serving_reads_as_disabled(provider: RtserveProvider) -> None:
    ctx = Contexts("rtserve_endpoint_status").data()
    state = EndpointStatusDataSource(provider).read(ctx, {"registered_model_name": "iris"})
    assert errors(ctx) == []
    assert state["enabled"] is False and state["state"] is None
    assert "not enabled" in state["state_message"]


def test_endpoint_status_reports_other_errors_with_their_code(provider: RtserveProvider, server: AppServer) -> None:
    server.rotate_token()
    ctx = Contexts("rtserve_endpoint_status").data()
    assert EndpointStatusDataSource(provider).read(ctx, {"registered_model_name": "iris"}) is None
    assert errors(ctx)[0].summary == "Could not read the serving status of 'iris': UNAUTHENTICATED"


def test_model_versions_groups_versions_by_stage_newest_first(provider: RtserveProvider, serving: AppServer) -> None:
    ctx = Contexts("rtserve_model_versions").data()
    state = ModelVersionsDataSource(provider).read(ctx, {"name": "iris"})

    assert errors(ctx) == []
    assert state["latest_version"] == "3"
    assert state["latest_by_stage"] == {"Staging": "3", "Production": "1"}
    assert state["versions_by_stage"] == {"Staging": ["3", "2"], "Production": ["1"]}
    first = state["versions"][0]
    assert first["creation_timestamp"] > 0
    assert {k: v for k, v in first.items() if k != "creation_timestamp"} == {
        "version": "1",
        "current_stage": "Production",
        "status": "READY",
        "run_id": None,  # registered without a run, by the test's registry
        "source": "mlflow-artifacts:/fake/iris/1",
        "aliases": [],
    }


def test_model_versions_of_a_model_without_versions_has_no_latest(provider: RtserveProvider, server: AppServer) -> None:
    server.register("empty", versions=0)
    state = ModelVersionsDataSource(provider).read(Contexts("rtserve_model_versions").data(), {"name": "empty"})
    assert state["latest_version"] is None and state["versions"] == []


def test_model_versions_of_an_unknown_model_is_an_error(provider: RtserveProvider) -> None:
    ctx = Contexts("rtserve_model_versions").data()
    assert ModelVersionsDataSource(provider).read(ctx, {"name": "nope"}) is None
    [error] = errors(ctx)
    assert error.summary == "Could not list the versions of 'nope': RESOURCE_DOES_NOT_EXIST"
    assert error.path == ["name"]


def test_version_aliases_maps_each_stage_to_the_version_it_serves(
    provider: RtserveProvider, serving: AppServer
) -> None:
    ctx = Contexts("rtserve_version_aliases").data()
    state = VersionAliasesDataSource(provider).read(ctx, {"registered_model_name": "iris"})
    assert state == {"registered_model_name": "iris", "id": "iris", "aliases": {"Staging": "3", "Production": "1"}}


def test_version_aliases_of_a_model_without_serving_is_an_error(provider: RtserveProvider) -> None:
    ctx = Contexts("rtserve_version_aliases").data()
    assert VersionAliasesDataSource(provider).read(ctx, {"registered_model_name": "iris"}) is None
    assert errors(ctx)[0].summary == "Could not read the version aliases of 'iris': RESOURCE_DOES_NOT_EXIST"
