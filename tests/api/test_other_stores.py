"""The backend on PostgreSQL (a throw-away cluster the test starts) and on an external MLflow server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from rtserve.server.client import BackendClient
from rtserve.server.demo import request_bodies
from rtserve.server.demo_model import register_demo_model
from rtserve.server.process import BackendProcess
from tests.conftest import mlflow_pointing_at
from tests.stores import mlflow_server

pytestmark = pytest.mark.api
TOKEN = "rtsv-other-stores"


def serve_and_score(backend: BackendProcess, registry_url: str) -> None:
    with mlflow_pointing_at(registry_url, TOKEN):
        register_demo_model(registry_url, name="iris-stores", versions=1)
    client = BackendClient(backend.url, TOKEN)
    client.enable("iris-stores")
    client.transition("iris-stores", "1", "Production")
    client.wait_ready("iris-stores", ["1"], timeout=120)
    response = client.score("iris-stores", "Production", request_bodies()["dataframe_split"][1])
    assert response.status_code == 200, response.text
    client.create_serving_endpoint(
        "stores-ga", {"served_entities": [{"entity_name": "iris-stores", "entity_version": 1}]}
    )
    client.wait_serving_settled("stores-ga")
    assert client.score_serving("stores-ga", request_bodies()["dataframe_split"][1]).status_code == 200
    client.close()


def test_state_lives_in_postgresql_and_survives_a_restart(tmp_path: Path, postgres_url: str):
    backend = BackendProcess(tmp_path / "data", admin_token=TOKEN, extra_args=["--database-url", postgres_url])
    with backend:
        serve_and_score(backend, backend.url)
    import sqlalchemy

    engine = sqlalchemy.create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as connection:
        names = [row[0] for row in connection.execute(sqlalchemy.text("select registered_model_name from endpoints"))]
        serving = [row[0] for row in connection.execute(sqlalchemy.text("select name from serving_endpoints"))]
    engine.dispose()
    assert names == ["iris-stores"]
    assert serving == ["stores-ga"]
    with backend:  # back from the store: the endpoint serves again without being re-enabled
        client = BackendClient(backend.url, TOKEN)
        client.wait_ready("iris-stores", ["1"], timeout=120)
        assert client.score("iris-stores", "Production", request_bodies()["inputs"][1]).status_code == 200
        client.close()


def test_an_external_mlflow_server_can_hold_the_registry(tmp_path: Path):
    with mlflow_server(tmp_path / "mlflow") as external:
        backend = BackendProcess(tmp_path / "data", admin_token=TOKEN, extra_args=["--mlflow-tracking-uri", external])
        with backend:
            serve_and_score(backend, external)
            # The transition went through rtserve to the external registry.
            stage = httpx.get(
                f"{external}/api/2.0/mlflow/model-versions/get", params={"name": "iris-stores", "version": "1"}
            ).json()["model_version"]["current_stage"]
            assert stage == "Production"


def test_instances_starting_at_once_on_postgresql_migrate_once(postgres_url: str):
    """Three instances start together on a new database: one migrates under the lock, none fails."""
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute("CREATE DATABASE migrate_race")
    url = postgres_url.rsplit("/", 1)[0] + "/migrate_race"
    code = "import sys; from rtserve.server.store import db; db.migrate(sys.argv[1])"
    starts = [
        subprocess.Popen([sys.executable, "-c", code, url], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for _ in range(3)
    ]
    outputs = [start.communicate(timeout=120)[0].decode(errors="replace") for start in starts]
    assert [start.returncode for start in starts] == [0, 0, 0], outputs
    with psycopg.connect(url) as connection:
        versions = connection.execute("SELECT version_num FROM alembic_version").fetchall()
        tables = connection.execute("SELECT count(*) FROM pg_tables WHERE tablename = 'serving_endpoints'").fetchone()
    assert len(versions) == 1 and tables == (1,)
