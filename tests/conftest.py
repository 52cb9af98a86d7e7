"""Shared fixtures: a live backend (a real `rtserve server` process) and real registered models."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from rtserve.server.client import BackendClient
from rtserve.server.demo_model import register_demo_model
from rtserve.server.process import BackendProcess

ADMIN_TOKEN = "rtsv-admin-token-for-tests"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def own_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Nothing a test does reaches the user's home directory: HOME is this run's own (so is the provider's
    mirror under ~/.rtserve/terraform), and npm keeps its downloads in the repository's ignored .cache/."""
    home = tmp_path_factory.mktemp("home")
    saved = {name: os.environ.get(name) for name in ("HOME", "npm_config_cache")}
    os.environ["HOME"] = str(home)
    os.environ.setdefault("npm_config_cache", str(REPO / ".cache" / "npm"))
    yield home
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


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


@contextlib.contextmanager
def mlflow_pointing_at(url: str, token: str) -> Iterator[None]:
    """Point the MLflow client (its environment and fluent API) at `url`, then restore what was there."""
    import mlflow

    saved = {name: os.environ.get(name) for name in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_TOKEN")}
    previous_uri = mlflow.get_tracking_uri()
    previous_registry = mlflow.get_registry_uri()
    os.environ.update(MLFLOW_TRACKING_URI=url, MLFLOW_TRACKING_TOKEN=token)
    mlflow.set_tracking_uri(url)
    mlflow.set_registry_uri(url)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        mlflow.set_tracking_uri(previous_uri)
        mlflow.set_registry_uri(previous_registry)


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


@pytest.fixture(scope="module")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL cluster for a test module (tests/stores.py), its schema migrated."""
    from rtserve.server.store import db
    from tests.stores import postgres_cluster

    with postgres_cluster(tmp_path_factory.mktemp("pg")) as url:
        db.migrate(url)
        yield url
