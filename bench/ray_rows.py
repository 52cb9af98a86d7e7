"""The Ray rows of `make bench` (`bench/run.py --ray`): the same model served by `--engine ray`.

A two-node Ray cluster on this machine's loopback (the one the tests start,
`tests/engines/ray_cluster.py`: explicit ports, its own HOME and temp dir, stopped by its own
process ids) and a second rtserve backend on it, with the same settings as the local one and its
default warm pool. It serves the demo model as the local backend does (the same replica count per
size) and a version with scale to zero on, for the cold start from zero.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from bench import procs
from rtserve.server.client import BackendClient
from rtserve.server.demo_model import register_demo_model
from rtserve.server.process import BackendProcess

ACTOR_TITLE = b"ray::ReplicaActor"  # how Ray names the process of a replica actor (and of a warm one)


@contextmanager
def ray_backend(
    work: Path, token: str, env: dict[str, str], model: str, cold: str
) -> Iterator[tuple[BackendProcess, BackendClient, Callable[[], list[int]]]]:
    """A backend with `--engine ray` on a fresh two-node cluster, serving `model` and `cold` (scale to zero).

    With it, a function listing the processes of the cluster's replica actors (the warm ones too), to meter.
    """
    from tests.engines.ray_cluster import running_cluster

    with running_cluster(work / "ray") as cluster:
        backend = BackendProcess(
            work / "ray-state",
            admin_token=token,
            env={**env, **cluster.driver_env},
            extra_args=["--engine", "ray", "--ray-address", cluster.address],
            log_path=work / "backend-ray.log",
        )
        backend.start()
        client = BackendClient(backend.url, token)
        try:
            for name in (model, cold):
                register_demo_model(backend.url, name=name, versions=1)
                client.enable(name)
                client.transition(name, "1", "Production")
            client.update_compute(cold, "Production", "Small", scale_to_zero=True)
            for name in (model, cold):
                client.wait_ready(name, ["1"], timeout=180)
            yield backend, client, lambda: _actor_processes([node.pid for node in cluster.processes])
        finally:
            client.close()
            backend.stop()


def _actor_processes(nodes: list[int]) -> list[int]:
    found = []
    for node in nodes:
        for pid in procs.descendants(node):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                    if cmdline.read().startswith(ACTOR_TITLE):
                        found.append(pid)
            except OSError:
                continue
    return found
