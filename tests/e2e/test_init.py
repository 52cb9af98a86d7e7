"""`rtserve init`: a new infrastructure repository that plans, deploys, serves and destroys as it is."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from rtserve.server.demo import request_bodies
from rtserve.server.demo_model import register_demo_model
from rtserve.server.process import BackendProcess
from tests.conftest import ADMIN_TOKEN

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]
MODEL = "iris-init"


def test_an_initialized_project_deploys_as_it_is(tmp_path: Path, backend: BackendProcess, mlflow_client_env: str):
    register_demo_model(mlflow_client_env, name=MODEL, versions=1)
    project = tmp_path / "serving"
    env = {**os.environ, "RTSERVE_HOST": backend.url, "RTSERVE_TOKEN": ADMIN_TOKEN}

    def rtserve(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "rtserve.server", *args]
        return subprocess.run(argv, cwd=project, env=env, capture_output=True, text=True, timeout=400)

    project.mkdir()
    made = rtserve("init", "--model", MODEL, "--host", backend.url)
    assert made.returncode == 0, made.stderr
    assert {p.relative_to(project).as_posix() for p in project.rglob("*") if p.is_file()} == {
        "cdktf.json",
        "main.py",
        "requirements.txt",
        ".gitignore",
        ".github/workflows/serving.yml",
    }
    again = rtserve("init", "--model", MODEL)
    assert again.returncode == 1 and "nothing was written" in again.stderr

    assert rtserve("plan").returncode == 2  # everything to add
    deployed = rtserve("deploy")
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    try:
        url = f"{backend.url}/model-endpoint/{MODEL}/Production/invocations"
        assert url in deployed.stdout
        _, body = request_bodies()["dataframe_split"]
        scored = httpx.post(url, json=body, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=60)
        assert scored.status_code == 200, scored.text
        assert rtserve("plan").returncode == 0  # nothing left to change
    finally:
        destroyed = rtserve("destroy", "--auto-approve")
        assert destroyed.returncode == 0, destroyed.stdout + destroyed.stderr
