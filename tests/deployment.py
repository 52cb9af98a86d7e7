"""Several backend instances on one PostgreSQL database, one two-node Ray cluster and an external MLflow
registry: the deployment of docs/scale-out.md, on one machine.

Shared by tests/api/test_several_instances.py and bench/instances.py. Needs the `ray` extra.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from rtserve.server.demo_model import register_demo_model
from rtserve.server.process import BackendProcess
from tests.conftest import mlflow_pointing_at
from tests.engines.ray_cluster import RayCluster, running_cluster
from tests.stores import mlflow_server, postgres_cluster


@dataclass
class Deployment:
    database_url: str
    registry_url: str
    cluster: RayCluster
    root: Path
    token: str
    env: dict[str, str] = field(default_factory=dict)  # every instance's extra environment (RTSERVE_... settings)
    instances: list[BackendProcess] = field(default_factory=list)

    def instance(self, name: str, *extra: str) -> BackendProcess:
        """A backend (not started) on this deployment's database, registry and cluster, with the data dir `name`."""
        env = self.cluster.driver_env | self.env
        args = ["--database-url", self.database_url, "--mlflow-tracking-uri", self.registry_url]
        args += ["--engine", "ray", "--ray-address", self.cluster.address, *extra]
        return BackendProcess(self.root / name / "data", admin_token=self.token, extra_args=args, env=env)


@contextmanager
def running_deployment(
    root: Path, token: str, model: str, *, versions: int = 2, instances: int = 2, env: dict[str, str] | None = None
) -> Iterator[Deployment]:
    """PostgreSQL, an MLflow server holding the demo model as `model` (`versions` versions), a two-node Ray cluster
    and `instances` started backends on them (named a, b, ...); every actor is ended when it is done."""
    with ExitStack() as stack, ThreadPoolExecutor(1) as pool:
        # The cluster takes longest to start: meanwhile the database and the registry start, and the model registers.
        starting = pool.submit(stack.enter_context, running_cluster(_subdir(root, "ray")))
        database_url = stack.enter_context(postgres_cluster(_subdir(root, "pg")))
        registry_url = stack.enter_context(mlflow_server(root / "mlflow", timeout=180))
        with mlflow_pointing_at(registry_url, token):
            register_demo_model(registry_url, name=model, versions=versions)
        cluster = starting.result()
        shared = Deployment(database_url, registry_url, cluster, root, token, dict(env or {}))
        try:
            for name in "abcdefgh"[:instances]:
                shared.instances.append(shared.instance(name).start())
            yield shared
        finally:
            for instance in shared.instances:
                instance.stop()
            stop_every_actor(cluster)


def _subdir(root: Path, name: str) -> Path:
    path = root / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def stop_every_actor(cluster: RayCluster) -> None:
    """Instances sharing a database leave their replicas to each other when they stop: end them here."""
    import ray

    ray.init(address=cluster.address, log_to_driver=False, logging_level="WARNING")
    try:
        for entry in ray.util.list_named_actors(True):
            ray.kill(ray.get_actor(entry["name"], entry["namespace"]), no_restart=True)
    finally:
        ray.shutdown()
