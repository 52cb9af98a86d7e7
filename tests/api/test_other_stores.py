"""The backend on PostgreSQL (a throw-away cluster the test starts) and on an external MLflow server."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rtserve.server.client import BackendClient
from rtserve.server.demo import request_bodies
from rtserve.server.demo_model import register_demo_model
from rtserve.server.process import BackendProcess, free_port
from tests.conftest import mlflow_pointing_at

pytestmark = pytest.mark.api
TOKEN = "rtsv-other-stores"


def _pg_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    if not candidates:
        pytest.skip(f"PostgreSQL's {name} is not installed (make system-deps installs it)")
    return str(candidates[-1])


def _as_postgres(*argv: str) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else list(argv)


@pytest.fixture(scope="module")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = Path(tempfile_dir := str(tmp_path_factory.mktemp("pg")))
    data = root / "cluster"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        os.chmod(root, 0o755)
        for parent in root.parents:  # postgres must be able to reach its data dir
            if parent == Path("/"):
                break
            os.chmod(parent, os.stat(parent).st_mode | 0o011)
    port = free_port()
    subprocess.run(
        _as_postgres(_pg_bin("initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"),
        check=True,
        capture_output=True,
    )
    subprocess.run(
        _as_postgres(
            _pg_bin("pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(root / "pg.log"),
            "-w",
            "-o",
            f"-k {tempfile_dir} -p {port} -c listen_addresses=127.0.0.1",
            "start",
        ),
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(_as_postgres(_pg_bin("pg_ctl"), "-D", str(data), "-m", "immediate", "stop"), capture_output=True)


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
    port = free_port()
    mlflow_dir = tmp_path / "mlflow"
    mlflow_dir.mkdir()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{mlflow_dir / 'mlflow.db'}",
            "--artifacts-destination",
            str(mlflow_dir / "artifacts"),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "mlflow server did not start"
            time.sleep(0.3)
        external = f"http://127.0.0.1:{port}"
        backend = BackendProcess(tmp_path / "data", admin_token=TOKEN, extra_args=["--mlflow-tracking-uri", external])
        with backend:
            serve_and_score(backend, external)
            # The transition went through rtserve to the external registry.
            stage = httpx.get(
                f"{external}/api/2.0/mlflow/model-versions/get", params={"name": "iris-stores", "version": "1"}
            ).json()["model_version"]["current_stage"]
            assert stage == "Production"
    finally:
        server.terminate()
        server.wait(20)


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
