"""Resilience with real processes: a replica killed under load, a model that cannot load, a backend restart."""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from rtserve.server.client import BackendClient
from rtserve.server.demo import request_bodies
from rtserve.server.demo_model import register_demo_model
from rtserve.server.process import BackendProcess
from tests.conftest import ADMIN_TOKEN, mlflow_pointing_at
from tests.registry_helpers import register_code_model

pytestmark = pytest.mark.api

PREVIEW = "/api/2.0/preview/mlflow/endpoints-v2"
IRIS = request_bodies()["dataframe_split"][1]
LIVE = ("STARTING", "READY")


def wait_until(condition: Callable[[], object], timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, message
        time.sleep(0.1)


def replica_states(client: BackendClient, model: str, version: str = "1") -> dict[str, str]:
    return {r["replica_id"]: r["last_known_status"] for r in client.replicas(model, version)}


def replica_pid(client: BackendClient, model: str, replica_id: str, version: str = "1") -> int:
    """The pid a replica logged when it started (`Replica <id> (pid <n>): loading ...`)."""
    params = {"registered_model_name": model, "endpoint_version_name": version, "replica_id": replica_id}
    logs = client.call("POST", f"{PREVIEW}/get-version-logs", json=params)["logs"]
    found = re.search(rf"Replica {re.escape(replica_id)} \(pid (\d+)\)", logs)
    assert found, logs
    return int(found.group(1))


def is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@dataclass
class SteadyLoad:
    """Threads scoring one URL back to back; every outcome is recorded with its latency."""

    url: str
    threads: int = 4
    timeout: float = 15.0
    outcomes: list[tuple[int, str, float]] = field(default_factory=list)  # (status, error_code, seconds)
    errors: list[str] = field(default_factory=list)  # transport errors and timeouts: a hang or a drop
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> SteadyLoad:
        for _ in range(self.threads):
            worker = threading.Thread(target=self._run)
            worker.start()
            self._workers.append(worker)
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join()

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        with httpx.Client(headers=headers, timeout=self.timeout) as http:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    response = http.post(self.url, json=IRIS)
                except httpx.HTTPError as exc:
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                code = response.json().get("error_code", "") if response.status_code != 200 else ""
                self.outcomes.append((response.status_code, code, time.monotonic() - started))

    def count(self) -> int:
        return len(self.outcomes)


@pytest.fixture(scope="module")
def medium_iris(admin: BackendClient, mlflow_client_env: str) -> str:
    """The demo model on Production with two replicas (Medium)."""
    model = "iris-resilience"
    register_demo_model(mlflow_client_env, name=model, versions=1)
    admin.enable(model)
    admin.transition(model, "1", "Production")
    admin.update_compute(model, "Production", "Medium")
    admin.wait_ready(model, ["1"], timeout=120)
    wait_until(lambda: list(replica_states(admin, model).values()) == ["READY"] * 2, 60, "never had 2 READY replicas")
    return model


def test_a_replica_killed_under_load_is_replaced_and_no_request_hangs(backend, admin: BackendClient, medium_iris: str):
    model = medium_iris
    before = replica_states(admin, model)
    victim = sorted(before)[0]
    pid = replica_pid(admin, model, victim)
    url = f"{backend.url}/model-endpoint/{model}/Production/invocations"

    with SteadyLoad(url) as load:
        wait_until(lambda: load.count() >= 20, 30, "no load got through before the kill")
        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        wait_until(lambda: replica_states(admin, model).get(victim) != "READY", 5, "the killed replica stayed READY")
        crashed_after = time.monotonic() - killed_at

        def replaced() -> bool:
            states = replica_states(admin, model)
            fresh = [rid for rid, state in states.items() if rid not in before and state == "READY"]
            return len(fresh) == 1 and sum(state == "READY" for state in states.values()) == 2

        wait_until(replaced, 30, f"never replaced: {replica_states(admin, model)}")
        served = load.count()
        wait_until(lambda: load.count() >= served + 20, 30, "load stalled after the replacement")

    assert crashed_after < 2.0
    assert load.errors == [], load.errors[:3]  # nothing hung past the client timeout, no dropped connection
    failures = [(status, code) for status, code, _ in load.outcomes if status != 200]
    assert set(failures) <= {(503, "TEMPORARILY_UNAVAILABLE")}, failures[:5]
    assert max(seconds for _, _, seconds in load.outcomes) < 5.0
    messages = [event["message"] for event in admin.events(model)]
    assert any(victim in message and "crashed" in message for message in messages), messages[:10]
    assert all(admin.score(model, "Production", IRIS).status_code == 200 for _ in range(20))
    print(f"kill -9 under load: {len(load.outcomes)} requests, {len(failures)} failed, crashed in {crashed_after:.2f}s")


def test_a_model_that_crashes_while_loading_is_failed_retried_with_backoff_and_harms_nothing_else(
    backend, admin: BackendClient, mlflow_client_env: str, medium_iris: str
):
    model = "failing-resilience"
    register_code_model(model, "failing_load.py")
    url = f"{backend.url}/model-endpoint/{medium_iris}/Production/invocations"

    with SteadyLoad(url, threads=2) as load:
        admin.enable(model)
        admin.transition(model, "1", "Production")

        def failed_attempts() -> list[int]:
            return sorted(
                event["timestamp"]
                for event in admin.events(model)
                if "failed to load the model" in event["message"] and "weights.bin" in event["message"]
            )

        wait_until(lambda: len(failed_attempts()) >= 4, 45, f"fewer than 4 attempts: {failed_attempts()}")
        version = {v["endpoint_version_name"]: v for v in admin.versions(model)}["1"]
        status = admin.status(model)

    attempts = failed_attempts()
    gaps = [later - earlier for earlier, later in zip(attempts, attempts[1:], strict=False)][:3]
    assert gaps[0] < gaps[1] < gaps[2], gaps  # backoff: each retry waits longer than the one before
    assert version["service_status"]["state"] == "SERVICE_STATE_FAILED"
    assert "weights.bin is missing" in version["service_status"]["message"]
    assert status["state"] == "ENDPOINT_STATE_FAILED" and "weights.bin is missing" in status["state_message"]
    response = admin.score(model, "Production", {"dataframe_records": [{"x": 1.0}]})
    assert (response.status_code, response.json()["error_code"]) == (503, "TEMPORARILY_UNAVAILABLE")
    # The other model answered every request while this one kept failing.
    assert load.errors == [] and load.count() > 0
    assert {status for status, _, _ in load.outcomes} == {200}
    admin.disable(model)


@pytest.fixture
def own_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackendProcess]:
    root = tmp_path_factory.mktemp("restart")
    backend = BackendProcess(root / "data", admin_token=ADMIN_TOKEN, log_path=root / "backend.log")
    try:
        yield backend
    finally:
        backend.stop()


def test_a_restarted_backend_brings_every_endpoint_back_with_nothing_lost(own_backend: BackendProcess):
    own_backend.start()
    model = "iris-restart"
    with mlflow_pointing_at(own_backend.url, ADMIN_TOKEN):
        register_demo_model(own_backend.url, name=model, versions=2)
    client = BackendClient(own_backend.url, ADMIN_TOKEN)
    client.enable(model)
    client.transition(model, "1", "Production")
    client.transition(model, "2", "Staging")
    client.update_compute(model, "Production", "Medium")
    client.update_compute(model, "Staging", "Small", max_batch_size=4, max_batch_wait_ms=2.0)
    split = {"blue": 50, "green": 50}
    client.create_serving_endpoint(
        "restart-split",
        {
            "served_entities": [
                {"name": "blue", "entity_name": model, "entity_version": "1"},
                {"name": "green", "entity_name": model, "entity_version": "2"},
            ],
            "traffic_config": {"routes": [{"served_model_name": n, "traffic_percentage": p} for n, p in split.items()]},
        },
        tags=[{"key": "team", "value": "ml"}],
    )
    client.wait_ready(model, ["1", "2"], timeout=120)
    serving_before = client.wait_serving_settled("restart-split")
    configs_before = sorted(client.status(model)["compute_config"], key=lambda c: c["stage"])
    events_before = client.events(model)
    old_pids = [
        replica_pid(client, model, replica["replica_id"], version)
        for version in ("1", "2")
        for replica in client.replicas(model, version)
    ]
    client.close()

    own_backend.stop()
    assert not any(is_alive(pid) for pid in old_pids), "replicas outlived their backend"
    own_backend.start()

    client = BackendClient(own_backend.url, ADMIN_TOKEN)
    try:
        client.wait_ready(model, ["1", "2"], timeout=60)
        for stage, version in (("Production", "1"), ("Staging", "2")):
            response = client.score(model, stage, IRIS)
            assert response.status_code == 200, response.text
            assert response.headers["served-model-name"] == f"{model}-{version}"
        assert client.aliases(model) == {"Production": "1", "Staging": "2"}
        wait_until(lambda: list(replica_states(client, model).values()) == ["READY"] * 2, 30, "Medium not restored")
        assert sorted(client.status(model)["compute_config"], key=lambda c: c["stage"]) == configs_before
        events_after = client.events(model)
        assert all(event in events_after for event in events_before)
        assert len(events_after) > len(events_before)  # the restart's own changes are recorded too
        serving_after = client.wait_serving_settled("restart-split", timeout=60)
        for field in ("id", "config", "tags", "creation_timestamp"):
            assert serving_after[field] == serving_before[field], field
        answered = {client.score_serving("restart-split", IRIS).headers["served-model-name"] for _ in range(40)}
        assert answered == set(split)
    finally:
        client.close()
