"""Serverless behaviour under real traffic: scale to zero, cold starts, autoscaling, limits, metrics."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from rtserve.server.client import BackendClient
from rtserve.server.demo import request_bodies
from rtserve.server.demo_model import register_demo_model
from rtserve.server.process import BackendProcess
from tests.conftest import mlflow_pointing_at
from tests.registry_helpers import register_code_model

pytestmark = pytest.mark.api
TOKEN = "rtsv-serverless-tests"
IRIS = request_bodies()["dataframe_split"][1]


@pytest.fixture(scope="module")
def fast_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackendClient]:
    """A backend with short idle, timeout, queue and scaling settings, as an operator can set them."""
    root = tmp_path_factory.mktemp("serverless")
    env = {
        "RTSERVE_SCALE_TO_ZERO_IDLE_SECONDS": "2",
        "RTSERVE_REQUEST_TIMEOUT_SECONDS": "8",  # short, yet above a loaded CI machine's first request
        "RTSERVE_MAX_QUEUED_REQUESTS": "2",
        "RTSERVE_DOWNSCALE_DELAY_SECONDS": "2",
        "RTSERVE_UPSCALE_DELAY_SECONDS": "0.5",
    }
    backend = BackendProcess(root / "data", admin_token=TOKEN, env=env, log_path=root / "backend.log")
    with backend, mlflow_pointing_at(backend.url, TOKEN):
        register_demo_model(backend.url, name="iris-s2z", versions=1)
        register_code_model("slow", "slow_model.py")
        client = BackendClient(backend.url, TOKEN)
        yield client
        client.close()


def serve(client: BackendClient, model: str, stage: str = "Production", **compute) -> None:
    client.enable(model)
    client.transition(model, "1", stage)
    if compute:
        client.update_compute(model, stage, **compute)
    client.wait_ready(model, ["1"], timeout=120)


def live_replicas(client: BackendClient, model: str) -> int:
    return sum(r["last_known_status"] in ("STARTING", "READY") for r in client.replicas(model, "1"))


def wait_until(condition, timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, message
        time.sleep(0.1)


def test_an_idle_version_scales_to_zero_and_the_next_request_cold_starts(fast_backend: BackendClient):
    serve(fast_backend, "iris-s2z", size="Small", scale_to_zero=True)
    assert fast_backend.score("iris-s2z", "Production", IRIS).status_code == 200
    wait_until(lambda: live_replicas(fast_backend, "iris-s2z") == 0, 20, "never scaled to zero")

    def version_status() -> dict:
        return {v["endpoint_version_name"]: v for v in fast_backend.versions("iris-s2z")}["1"]["service_status"]

    wait_until(lambda: "zero" in version_status()["message"], 5, "status never said it scaled to zero")
    assert version_status()["state"] == "SERVICE_STATE_READY"
    assert fast_backend.status("iris-s2z")["state"] == "ENDPOINT_STATE_READY"
    started = time.perf_counter()
    response = fast_backend.score("iris-s2z", "Production", IRIS)
    cold = time.perf_counter() - started
    print(f"cold start answered in {cold * 1000:.0f} ms")
    assert response.status_code == 200, response.text
    assert cold < 5, "a cold start should take well under a second; 5 s allows for a loaded CI machine"
    messages = [e["message"] for e in fast_backend.events("iris-s2z")]
    assert any("scaled to zero" in m for m in messages)
    assert any("cold start" in m for m in messages)


def test_a_serving_endpoint_scales_to_zero_and_its_next_request_cold_starts(fast_backend: BackendClient):
    with mlflow_pointing_at(fast_backend.host, TOKEN):
        register_demo_model(fast_backend.host, name="iris-s2z-ga", versions=1)
    served = {"entity_name": "iris-s2z-ga", "entity_version": "1", "scale_to_zero_enabled": True}
    fast_backend.create_serving_endpoint("s2z-ga", {"served_entities": [served]})
    fast_backend.wait_serving_settled("s2z-ga")

    def ready_replicas() -> str:
        return fast_backend.http.get("/api/2.0/serving-endpoints/s2z-ga/metrics").text

    wait_until(lambda: 'state="READY"' not in ready_replicas(), 20, "the endpoint never scaled to zero")
    detail = fast_backend.serving_endpoint("s2z-ga")
    assert detail["state"]["ready"] == "READY"
    assert "zero" in detail["config"]["served_entities"][0]["state"]["deployment_state_message"]

    response = fast_backend.score_serving("s2z-ga", IRIS)  # queued while a replica starts, then answered

    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": [0, 2]}


def test_a_slow_request_gets_504_after_the_request_timeout(fast_backend: BackendClient):
    serve(fast_backend, "slow")
    started = time.monotonic()
    response = fast_backend.score("slow", "Production", {"dataframe_records": [{"x": 12.0}]})
    assert response.status_code == 504
    assert response.json()["error_code"] == "DEADLINE_EXCEEDED"
    assert time.monotonic() - started < 11


def test_past_the_queue_limit_requests_get_429(fast_backend: BackendClient):
    serve(fast_backend, "slow")
    time.sleep(4.5)  # let the previous test's slow request drain from the replica
    # Small: one replica sized for 4 concurrent requests, plus a queue of 2: the 7th concurrent one is refused.
    with ThreadPoolExecutor(12) as pool:
        responses = list(
            pool.map(lambda _: fast_backend.score("slow", "Production", {"dataframe_records": [{"x": 1.0}]}), range(12))
        )
    statuses = sorted(r.status_code for r in responses)
    assert 429 in statuses and 200 in statuses, statuses
    refused = next(r for r in responses if r.status_code == 429)
    assert refused.json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"
    assert int(refused.headers["Retry-After"]) >= 1  # as rate-limit 429s have it
    assert set(statuses) <= {200, 429, 504}


def test_load_scales_a_medium_version_up_and_idle_scales_it_back(fast_backend: BackendClient):
    serve(fast_backend, "slow", size="Medium")
    assert live_replicas(fast_backend, "slow") == 2
    stop = threading.Event()

    def load() -> None:
        client = BackendClient(fast_backend.host, TOKEN)
        while not stop.is_set():
            client.score("slow", "Production", {"dataframe_records": [{"x": 0.3}]})
        client.close()

    threads = [threading.Thread(target=load) for _ in range(14)]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: live_replicas(fast_backend, "slow") == 4, 30, "never scaled up to 4 replicas")
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    wait_until(lambda: live_replicas(fast_backend, "slow") == 2, 30, "never scaled back down to 2")
    messages = [e["message"] for e in fast_backend.events("slow")]
    assert any("scaling up from 2" in m for m in messages)
    assert any("scaling down from" in m for m in messages)
    fast_backend.update_compute("slow", "Production", "Small")
    fast_backend.wait_ready("slow", ["1"])


def test_a_compute_change_applies_without_dropping_requests(fast_backend: BackendClient):
    serve(fast_backend, "iris-s2z")
    failures: list[int] = []
    stop = threading.Event()

    def load() -> None:
        client = BackendClient(fast_backend.host, TOKEN)
        while not stop.is_set():
            response = client.score("iris-s2z", "Production", IRIS)
            if response.status_code != 200:
                failures.append(response.status_code)
        client.close()

    thread = threading.Thread(target=load)
    thread.start()
    try:
        for size, scale_to_zero, batching in (("Medium", False, {}), ("Small", False, {"max_batch_size": 8})):
            fast_backend.update_compute("iris-s2z", "Production", size, scale_to_zero, **batching)
            update = {v["endpoint_version_name"]: v for v in fast_backend.versions("iris-s2z")}["1"]
            assert update["config_update_status"]["state"] == "SERVICE_STATE_PENDING"
            fast_backend.wait_ready("iris-s2z", ["1"], timeout=60)
    finally:
        stop.set()
        thread.join()
    assert failures == []
    spec = fast_backend.status("iris-s2z")["compute_config"]
    production = next(c for c in spec if c["stage"] == "Production")["workload_spec"]
    assert production == {
        "workload_size_id": "Small",
        "scale_to_zero_enabled": False,
        "max_batch_size": 8,
        "max_batch_wait_ms": 5.0,
    }


def test_metrics_use_the_reference_names_labelled_by_model_and_version(fast_backend: BackendClient):
    serve(fast_backend, "iris-s2z")
    fast_backend.score("iris-s2z", "Production", IRIS)
    fast_backend.score("iris-s2z", "Production", {"dataframe_records": [{"nope": 1}]})
    text = httpx.get(f"{fast_backend.host}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).text
    for line in (
        'request_count_total{model="iris-s2z",version="1"}',
        'request_4xx_count_total{model="iris-s2z",version="1"}',
        'request_latency_ms_bucket{le="1.0",model="iris-s2z",version="1"}',
        'model_queue_time_ms_count{model="iris-s2z",version="1"}',
        'in_flight_requests{model="iris-s2z",version="1"}',
        'provisioned_concurrent_requests_total{model="iris-s2z",version="1"}',
        'replicas{model="iris-s2z",state="READY",version="1"}',
        'cpu_usage_percentage{model="iris-s2z",version="1"}',
        'mem_usage_percentage{model="iris-s2z",version="1"}',
    ):
        assert line in text, line
    usage = {
        family.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if family.name.endswith("_usage_percentage") and sample.labels == {"model": "iris-s2z", "version": "1"}
    }
    assert 0 < usage["mem_usage_percentage"] < 100  # a loaded scikit-learn model takes some memory
    assert 0 <= usage["cpu_usage_percentage"] <= 100 * os.cpu_count()
    assert httpx.get(f"{fast_backend.host}/metrics").status_code == 401
