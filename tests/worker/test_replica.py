"""The replica process on its own: what it reports, how it exits, and that it never outlives its engine."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rtserve.server.engines.base import ReplicaSpec
from rtserve.server.worker.replica import run_replica
from tests.worker.models import save_failing_load_model

pytestmark = pytest.mark.api


def start(tmp_path: Path, model_path: Path) -> tuple[multiprocessing.Process, multiprocessing.connection.Connection]:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["__main__", "rtserve.server.worker.preload"])
    spec = ReplicaSpec("r", "m", "1", str(model_path), str(tmp_path / "r.log"))
    parent_conn, child_conn = context.Pipe()
    process = context.Process(target=run_replica, args=(spec, str(tmp_path / "r.sock"), child_conn))
    process.start()
    child_conn.close()
    return process, parent_conn


def test_a_replica_reports_ready_and_exits_0_on_sigterm(tmp_path: Path, iris_path: Path):
    process, status = start(tmp_path, iris_path)
    assert status.poll(60), "no status report"
    assert status.recv() == ("ready",)
    assert (tmp_path / "r.sock").exists()

    process.terminate()
    process.join(10)

    assert process.exitcode == 0
    assert not (tmp_path / "r.sock").exists()
    assert "Stopped" in (tmp_path / "r.log").read_text()


def test_a_replica_that_cannot_load_reports_failed_and_exits_1(tmp_path: Path, model_dir: Path):
    process, status = start(tmp_path, save_failing_load_model(model_dir / "failing-load-replica"))
    assert status.poll(60), "no status report"

    report = status.recv()
    process.join(10)

    assert report == ("failed", "RuntimeError: cannot load")
    assert process.exitcode == 1


def test_a_replica_stops_when_its_engine_goes_away(tmp_path: Path, iris_path: Path):
    process, status = start(tmp_path, iris_path)
    assert status.poll(60) and status.recv() == ("ready",)

    status.close()  # what the kernel does when the engine's process dies
    process.join(10)

    assert process.exitcode == 0


def test_python_m_backend_worker_serves_until_sigterm(tmp_path: Path, iris_path: Path):
    socket_path = tmp_path / "cli.sock"
    log_path = tmp_path / "cli.log"
    with open(log_path, "wb") as log:
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rtserve.server.worker",
                "--model-uri",
                str(iris_path),
                "--socket",
                str(socket_path),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=Path(__file__).resolve().parents[2],
        )
    try:
        deadline = time.monotonic() + 60
        while not socket_path.exists() and worker.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert socket_path.exists(), log_path.read_text()
        os.kill(worker.pid, signal.SIGTERM)
        assert worker.wait(10) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
