"""A model endpoint's placement per stage (the preview API's compute config), through the real app and
controller with a fake engine that counts as the Ray engine: what reaches the replicas, what the status
shows, what an update keeps or clears, and what its event says."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.app import AppServer, running_app
from tests.ui.helpers import UiClient

pytestmark = pytest.mark.unit
PREVIEW = "/api/2.0/preview/mlflow/endpoints-v2"
PLACEMENT = {"node_labels": {"example.com/pool": "cpu-large"}, "resources": {"licensed": 1}}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[AppServer]:
    """The app serving `iris` version 1 in Production, on settings that name the Ray engine."""
    with running_app(tmp_path / "app", {"iris": 1}, settings={"engine": "ray"}) as app:
        app.set_stage("iris", "1", "Production")
        app.enable("iris")
        yield app


def update(server: AppServer, **spec: object) -> None:
    body = {"workload_size_id": "Small", "scale_to_zero_enabled": False, **spec}
    server.api(
        "PUT",
        f"{PREVIEW}/update-compute-config",
        json={"registered_model_name": "iris", "stage": "Production", "desired_workload_config_spec": body},
    )
    server.settle()


def production_spec(server: AppServer) -> dict:
    status = server.api("GET", f"{PREVIEW}/get-status", params={"registered_model_name": "iris"})
    [config] = [c for c in status["endpoint_status"]["compute_config"] if c["stage"] == "Production"]
    return config["workload_spec"]


def running(server: AppServer) -> list:
    """The specs of the replicas running now."""
    live = {r.replica_id for r in server.engine.replicas()} - set(server.engine.stopped)
    return [spec for spec in server.engine.started if spec.replica_id in live]


def test_a_stages_placement_reaches_its_replicas_and_shows_in_its_compute_config(server: AppServer) -> None:
    update(server, placement=PLACEMENT)

    [spec] = running(server)
    assert (spec.node_labels, spec.resources) == ({"example.com/pool": "cpu-large"}, {"licensed": 1.0})
    assert production_spec(server) == {
        "workload_size_id": "Small",
        "scale_to_zero_enabled": False,
        "placement": {"node_labels": {"example.com/pool": "cpu-large"}, "resources": {"licensed": 1.0}},
    }
    events = server.api("GET", f"{PREVIEW}/get-event-history", params={"registered_model_name": "iris"})["events"]
    assert any(
        "placed on nodes with node labels example.com/pool=cpu-large; resources licensed=1" in e["message"]
        for e in events
    )


def test_a_spec_without_placement_keeps_it_and_null_or_empty_clears_it(server: AppServer) -> None:
    update(server, placement=PLACEMENT)
    update(server, workload_size_id="Medium")  # as Databricks' clients send it: no placement

    assert production_spec(server)["placement"] == {
        "node_labels": {"example.com/pool": "cpu-large"},
        "resources": {"licensed": 1.0},
    }
    assert {(s.node_labels["example.com/pool"], s.resources["licensed"]) for s in running(server)} == {
        ("cpu-large", 1.0)
    }

    for cleared in (None, {}):
        update(server, placement=PLACEMENT)
        update(server, placement=cleared)
        assert "placement" not in production_spec(server)
        assert [(s.node_labels, s.resources) for s in running(server)] == [({}, {})]


def test_the_ui_compute_page_shows_the_stages_placement_and_its_form_keeps_it(server: AppServer) -> None:
    update(server, placement=PLACEMENT)

    with server.serve():
        ui = UiClient(server)  # it needs only the URL that serve() sets
        try:
            assert ui.sign_in(server.token).status_code == 303
            page = ui.http.get("/ui/models/iris/compute").text
            assert "Placement on Ray nodes with node labels example.com/pool=cpu-large; resources licensed=1" in page
            saved = ui.post("/ui/models/iris/compute", {"stage": "Production", "workload_size_id": "Medium"})
        finally:
            ui.close()
    assert saved.status_code == 303
    assert production_spec(server) == {
        "workload_size_id": "Medium",
        "scale_to_zero_enabled": False,
        "placement": {"node_labels": {"example.com/pool": "cpu-large"}, "resources": {"licensed": 1.0}},
    }
