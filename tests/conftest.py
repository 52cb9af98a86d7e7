"""Shared fixtures: a live backend (a real `rtserve server` process) and real registered models."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from backend.client import BackendClient
from backend.demo_model import DEMO_MODEL, register_demo_model
from backend.process import BackendProcess

ADMIN_TOKEN = "rtsv-admin-token-for-tests"


@pytest.fixture(scope="session")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackendProcess]:
    root = tmp_path_factory.mktemp("backend")
    process = BackendProcess(root / "data", admin_token=ADMIN_TOKEN, log_path=root / "backend.log")
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="session")
def admin(backend: BackendProcess) -> Iterator[BackendClient]:
    client = BackendClient(backend.url, ADMIN_TOKEN)
    yield client
    client.close()


@pytest.fixture(scope="session")
def mlflow_client_env(backend: BackendProcess) -> str:
    """Point the stock MLflow client at the backend, as a user would."""
    os.environ["MLFLOW_TRACKING_TOKEN"] = ADMIN_TOKEN
    os.environ["MLFLOW_TRACKING_URI"] = backend.url
    return backend.url


@pytest.fixture(scope="session")
def iris_model(mlflow_client_env: str) -> str:
    """The demo model registered twice (versions 1 and 2) under a session-unique name."""
    register_demo_model(mlflow_client_env, name="iris-tests")
    return "iris-tests"


def unique_name(request: pytest.FixtureRequest, prefix: str) -> str:
    return f"{prefix}-{request.node.name[:40]}".replace("[", "-").replace("]", "").replace("_", "-")


__all__ = ["ADMIN_TOKEN", "DEMO_MODEL", "Path", "unique_name"]
