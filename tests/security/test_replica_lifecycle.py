"""Replica lifecycle under faults, with real processes: what a kill -9 of the backend or of the fork
server leaves behind, what a request that crashes its replica costs, and how long a replica may
take to stop (while loading with its engine gone, or draining a request that never ends)."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from pathlib import Path

import httpx
import mlflow.pyfunc
import psutil
import pytest

from rtserve.server.client import BackendClient
from rtserve.server.engines.base import ReplicaSpec
from rtserve.server.engines.local.client import WorkerClient
from rtserve.server.process import BackendProcess
from rtserve.server.worker.replica import run_replica
from tests.conftest import ADMIN_TOKEN, mlflow_pointing_at
from tests.registry_helpers import MODEL_CODE, register_code_model
from tests.worker.models import save_slow_model

pytestmark = pytest.mark.api

HERE = Path(__file__).parent


def wait_until(condition: Callable[[], object], timeout: float, message: Callable[[], str] | str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(message() if callable(message) else message)
        time.sleep(0.05)


def replica_states(client: BackendClient, model: str, version: str = "1") -> dict[str, str]:
    return {r["replica_id"]: r["last_known_status"] for r in client.replicas(model, version)}


def gone(process: psutil.Process) -> bool:
    """Exited (a zombie waiting for whoever adopted it counts: it runs nothing)."""
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def forkserver_of(backend: BackendProcess) -> psutil.Process:
    assert backend.process is not None
    for child in psutil.Process(backend.process.pid).children():
        if "multiprocessing.forkserver" in " ".join(child.cmdline()):
            return child
    raise AssertionError("the backend has no fork server")


@pytest.fixture
def own_backend(tmp_path: Path) -> Iterator[BackendProcess]:
    backend = BackendProcess(tmp_path / "data", admin_token=ADMIN_TOKEN, log_path=tmp_path / "backend.log")
    try:
        yield backend.start()
    finally:
        backend.stop()


def serve(backend: BackendProcess, model: str, code_file: str, size: str = "Small") -> BackendClient:
    with mlflow_pointing_at(backend.url, ADMIN_TOKEN):
        register_code_model(model, code_file)
    client = BackendClient(backend.url, ADMIN_TOKEN)
    client.enable(model)
    client.transition(model, "1", "Production")
    if size != "Small":
        client.update_compute(model, "Production", size)
    client.wait_ready(model, ["1"], timeout=120)
    return client


def test_nothing_the_backend_started_outlives_a_kill_9_of_the_backend(own_backend: BackendProcess):
    client = serve(own_backend, "slow-orphans", "slow_model.py")
    outcome: list[object] = []

    def long_request() -> None:  # a replica busy for 60 s: it must not wait for that to finish
        try:
            outcome.append(client.score("slow-orphans", "Production", {"dataframe_records": [{"x": 60.0}]}))
        except httpx.HTTPError as exc:
            outcome.append(exc)

    request = threading.Thread(target=long_request, daemon=True)
    request.start()
    time.sleep(1.0)
    assert own_backend.process is not None
    descendants = psutil.Process(own_backend.process.pid).children(recursive=True)
    commands = [" ".join(p.cmdline()) for p in descendants]
    assert any("forkserver" in command for command in commands), commands
    assert any("resource_tracker" in command for command in commands), commands
    assert len(descendants) >= 3, commands  # the fork server, the resource tracker and the replica, at least

    own_backend.kill()

    wait_until(
        lambda: all(gone(p) for p in descendants),
        5.0,
        lambda: f"outlived the backend: {[(p.pid, ' '.join(p.cmdline())) for p in descendants if not gone(p)]}",
    )
    request.join(5)
    client.close()


def test_a_kill_9_of_the_fork_server_leaves_every_replica_serving_and_new_ones_start(own_backend: BackendProcess):
    model = "iris-forkserver"
    client = serve(own_backend, model, "params_model.py", size="Medium")
    wait_until(lambda: list(replica_states(client, model).values()) == ["READY"] * 2, 60, "no 2 READY replicas")
    before = replica_states(client, model)
    forkserver = forkserver_of(own_backend)

    forkserver.kill()
    killed_at = time.monotonic()

    answers = []
    while time.monotonic() - killed_at < 3.0:  # longer than the engine takes to notice a dead replica
        response = client.score(model, "Production", {"dataframe_records": [{"x": 2.0}]})
        answers.append((response.status_code, response.text))
        time.sleep(0.02)
    assert {status for status, _ in answers} == {200}, answers[:3]
    assert replica_states(client, model) == before  # same replicas, all READY: none crashed or replaced
    wait_until(lambda: forkserver_of(own_backend).pid != forkserver.pid, 10, "the fork server was not restarted")

    scaled_at = time.monotonic()
    client.update_compute(model, "Production", "Large")  # 4 replicas: 2 new ones from the new fork server
    wait_until(
        lambda: list(replica_states(client, model).values()) == ["READY"] * 4,
        30,
        lambda: f"did not scale to 4 READY replicas: {replica_states(client, model)}",
    )
    print(f"2 more replicas READY {time.monotonic() - scaled_at:.2f} s after the scale-up")
    assert before.keys() <= replica_states(client, model).keys()
    response = client.score(model, "Production", {"dataframe_records": [{"x": 3.0}]})
    assert response.status_code == 200 and response.json() == {"predictions": [3.0]}
    client.close()


def test_a_request_that_kills_its_replica_costs_one_replica_and_answers_503(own_backend: BackendProcess):
    model = "exiting-predict"
    client = serve(own_backend, model, str(HERE / "exiting_predict.py"), size="Medium")
    wait_until(lambda: list(replica_states(client, model).values()) == ["READY"] * 2, 60, "no 2 READY replicas")
    before = replica_states(client, model)

    response = client.score(model, "Production", {"dataframe_records": [{"x": -1.0}]})

    assert response.status_code == 503, response.text
    assert response.json()["error_code"] == "TEMPORARILY_UNAVAILABLE"
    assert "message" in response.json()
    time.sleep(1.0)  # let the engine see every exit there was

    def crashed() -> list[str]:
        return [e["message"] for e in client.events(model) if " crashed: " in e["message"]]

    assert len(crashed()) == 1, crashed()
    assert "exited with code 7" in crashed()[0]
    survivors = [rid for rid, state in replica_states(client, model).items() if rid in before and state == "READY"]
    assert len(survivors) == 1, replica_states(client, model)
    ok = client.score(model, "Production", {"dataframe_records": [{"x": 1.5}]})
    assert ok.status_code == 200 and ok.json() == {"predictions": [3.0]}
    client.close()


# -- one replica process, without an engine -----------------------------------------------------


def start_replica(tmp_path: Path, model_path: Path, **options: float) -> tuple[multiprocessing.Process, Connection]:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["__main__", "rtserve.server.worker.preload"])
    spec = ReplicaSpec("r", "m", "1", str(model_path), str(tmp_path / "r.log"))
    parent_conn, child_conn = context.Pipe()
    process = context.Process(target=run_replica, args=(spec, str(tmp_path / "r.sock"), child_conn), kwargs=options)
    process.start()
    child_conn.close()
    return process, parent_conn


def exited_within(process: multiprocessing.Process, timeout: float) -> float | None:
    started = time.monotonic()
    process.join(timeout)
    return None if process.exitcode is None else time.monotonic() - started


@pytest.fixture
def stop_leftover() -> Iterator[list[multiprocessing.Process]]:
    processes: list[multiprocessing.Process] = []
    yield processes
    for process in processes:
        if process.exitcode is None:
            process.kill()
            process.join(5)


def test_a_replica_still_loading_its_model_exits_when_its_engine_goes_away(
    tmp_path: Path, stop_leftover: list[multiprocessing.Process]
):
    model_path = tmp_path / "slow-load"
    mlflow.pyfunc.save_model(str(model_path), python_model=str(MODEL_CODE / "slow_load.py"))  # loads for 4 s
    process, status = start_replica(tmp_path, model_path)
    stop_leftover.append(process)
    log = tmp_path / "r.log"
    wait_until(lambda: log.exists() and "loading" in log.read_text(errors="replace"), 60, "it never started loading")

    status.close()  # what the kernel does when the engine's process dies

    took = exited_within(process, 10)
    assert took is not None and took < 2.0, f"exited after {took} s: it finished loading first"
    assert not (tmp_path / "r.sock").exists()


def test_a_draining_replica_exits_at_its_drain_deadline_with_a_request_still_running(
    tmp_path: Path, stop_leftover: list[multiprocessing.Process]
):
    model_path = save_slow_model(tmp_path / "slow")
    process, status = start_replica(tmp_path, model_path, drain_timeout=0.5)
    stop_leftover.append(process)
    assert status.poll(60) and status.recv() == ("ready",)

    async def long_request_then_sigterm() -> float | None:
        client = WorkerClient(str(tmp_path / "r.sock"))
        await client.connect()
        body = json.dumps({"dataframe_records": [{"x": 1.0}], "params": {"seconds": 60.0}}).encode()
        request = asyncio.create_task(client.invoke(body, "application/json", 90))
        await asyncio.sleep(0.3)
        assert process.pid is not None
        os.kill(process.pid, signal.SIGTERM)
        took = await asyncio.get_running_loop().run_in_executor(None, exited_within, process, 10)
        with pytest.raises(ConnectionError):
            await request
        await client.close()
        return took

    took = asyncio.run(long_request_then_sigterm())

    assert took is not None and took < 3.0, f"exited after {took} s"
    log = (tmp_path / "r.log").read_text()
    assert "Drain deadline (0.5 s) passed with 1 request(s) unanswered" in log
