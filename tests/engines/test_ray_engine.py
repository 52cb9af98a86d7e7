"""The Ray engine on a real two-node Ray cluster (on this machine), with real MLflow models.

One cluster serves the whole module (a node takes 10-25 s to start here). The test process is a Ray
driver of it for the module (`driver`), which the engines share; each test uses a namespace of its
own, so that actors left by one test never meet the next.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import mlflow
import pytest

from rtserve.server.demo_model import iris_frame, register_demo_model
from rtserve.server.engines.base import NoReadyReplica, ReplicaObservation, ReplicaSpec, ReplicaState
from rtserve.server.registry import Registry
from rtserve.server.store.replica_slots import SlotClaims
from rtserve.server.worker.protocol import encode_frame
from tests.engines.ray_cluster import HEAD_IP, NODE_B_LABELS, WORKER_IP, RayCluster, running_cluster
from tests.engines.replica_waits import SETTLED, observe, start_ready, wait_for_state

ray = pytest.importorskip("ray", reason="the Ray engine's tests need the 'ray' extra: pip install -e '.[test,ray]'")

from rtserve.server.engines.ray import RayEngine  # noqa: E402 - only with the extra

pytestmark = pytest.mark.ray

JSON = "application/json"
NODE_C_IP = "127.0.0.4"  # a third node, added (and lost) by one test


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayCluster]:
    """Two nodes (resources nodeA and nodeB), HOME and RAY_AUTH_MODE of their own, for this process too."""
    with running_cluster(tmp_path_factory.mktemp("ray-cluster")) as started:
        yield started


@pytest.fixture(scope="module")
def driver(cluster: RayCluster) -> Iterator[Any]:
    """This process as a driver of the cluster for the module: the engines use this connection."""
    ray.init(address=cluster.address, log_to_driver=False, logging_level="WARNING")
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def demo_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo model, registered in a registry of its own and downloaded as the controller does."""
    root = tmp_path_factory.mktemp("ray-registry")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    saved = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    cwd = os.getcwd()
    os.chdir(root)  # the registry's artifacts go to ./mlruns
    try:
        register_demo_model(uri, name="iris-demo", versions=1)
        return Path(Registry(uri).download("iris-demo", "1", root / "models"))
    finally:
        os.chdir(cwd)
        mlflow.set_tracking_uri(saved[0])
        mlflow.set_registry_uri(saved[1])


def run_engine(
    tmp_path: Path, scenario: Callable[[RayEngine], Awaitable[Any]], timeout: float = 180, **options: Any
) -> Any:
    options.setdefault("namespace", f"t-{tmp_path.name}"[:60])
    options.setdefault("health_interval", 0.2)

    async def main() -> Any:
        engine = RayEngine(None, tmp_path / "data", **options)
        await engine.start()
        try:
            return await scenario(engine)
        finally:
            await engine.close()

    return asyncio.run(asyncio.wait_for(main(), timeout))


def make_spec(tmp_path: Path, model_path: Path, replica_id: str = "iris-1-a", version: str = "1", **options: Any):
    return ReplicaSpec(
        replica_id=replica_id,
        model_name="iris",
        version=version,
        model_uri=str(model_path),
        log_path=str(tmp_path / "logs" / f"{replica_id}.log"),
        **options,
    )


def named_actors(namespace: str) -> set[str]:
    return {
        entry["name"] for entry in ray.util.list_named_actors(all_namespaces=True) if entry["namespace"] == namespace
    }


async def until_no_actors(namespace: str, timeout: float = 10.0) -> set[str]:
    deadline = time.monotonic() + timeout
    while (names := named_actors(namespace)) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    return names


def iris_request(row: int) -> bytes:
    features, _ = iris_frame()
    split = json.loads(features.iloc[[row]].to_json(orient="split", index=False))
    return json.dumps({"dataframe_split": split}).encode()


def slow_request(seconds: float, x: float = 1.0) -> bytes:
    return json.dumps({"dataframe_records": [{"x": x}], "params": {"seconds": seconds}}).encode()


def wait_until_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while process_exists(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not process_exists(pid)


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_replica_becomes_ready_and_scores_the_demo_model(tmp_path: Path, driver: Any, demo_model_dir: Path):
    rows = [0, 1, 50, 51, 100, 101, 149]
    features, _ = iris_frame()
    expected = mlflow.pyfunc.load_model(str(demo_model_dir)).predict(features.iloc[rows]).tolist()

    async def scenario(engine: RayEngine) -> tuple[Any, ...]:
        spec = make_spec(tmp_path, demo_model_dir, max_batch_size=8, max_batch_wait_ms=2.0)
        started = time.monotonic()
        await engine.start_replica(spec)
        first = observe(engine, "iris-1-a")
        observation = await wait_for_state(engine, "iris-1-a", SETTLED)
        assert observation.state is ReplicaState.READY, (observation, engine.read_logs("iris-1-a"))
        ready_after = time.monotonic() - started
        alone = await engine.invoke("iris", "1", iris_request(0), JSON, 30)
        together = await asyncio.gather(*(engine.invoke("iris", "1", iris_request(row), JSON, 30) for row in rows))
        with pytest.raises(NoReadyReplica):
            await engine.invoke("iris", "2", iris_request(0), JSON, 5)
        # Requests go straight to the actor's port on its node, which serves only those who present its secret.
        info = await ray.get_actor("iris-1-a", namespace=engine.namespace).describe.remote()
        host, port = info["address"]
        strangers = [
            await answer_to(host, port, {"op": "invoke", "id": 1, "content_type": JSON}, iris_request(0)),
            await answer_to(host, port, {"op": "hello", "id": 0, "secret": "guessed"}),
        ]
        await asyncio.sleep(0.5)  # a health check copies the newest log lines
        assert named_actors(engine.namespace) == {"iris-1-a"}  # no warm pool: the replica is a new actor of its name
        checked = observe(engine, "iris-1-a")
        return first, observation, ready_after, alone, together, engine.read_logs("iris-1-a"), host, strangers, checked

    first, observation, ready_after, alone, together, log, host, strangers, checked = run_engine(
        tmp_path, scenario, warm_actors_per_node=0
    )

    assert first is not None and first.state is ReplicaState.STARTING
    assert observation.pid is not None and observation.in_flight == 0
    assert (alone.status, json.loads(alone.body)) == (200, {"predictions": [expected[0]]})
    assert [json.loads(result.body)["predictions"] for result in together] == [[label] for label in expected]
    assert "ready (batches of up to 8)" in log
    # The backend's copy of the actor's log, where the log routes read it.
    assert "ready (batches of up to 8)" in (tmp_path / "logs" / "iris-1-a.log").read_text()
    assert host in (HEAD_IP, WORKER_IP)  # the node's IP as Ray knows it
    assert strangers == [b"", b""]  # closed unanswered: no secret, or the wrong one
    assert "Refused a connection" in log
    # The actor measures its own CPU and memory on its node, for the usage metrics.
    assert checked is not None and checked.usage is not None
    cpu, memory = checked.usage
    assert cpu >= 0 and 0 < memory < 100
    print(f"demo model READY in {ready_after:.1f} s")


async def answer_to(host: str, port: int, header: dict[str, Any], body: bytes = b"") -> bytes:
    """What a replica's port answers a connection that opens with this frame, until it closes it."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(encode_frame(header, body))
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


def test_a_model_that_cannot_load_is_failed_with_the_loaders_error(
    tmp_path: Path, cluster: RayCluster, driver: Any, failing_load_path: Path
):
    namespace = f"t-{tmp_path.name}"[:60]

    async def scenario(engine: RayEngine) -> tuple[ReplicaObservation, str, set[str]]:
        await engine.start_replica(make_spec(tmp_path, failing_load_path, "iris-1-fails"))
        failed = await wait_for_state(engine, "iris-1-fails", SETTLED)
        # Its actor is killed: a FAILED replica holds no process on the cluster.
        return failed, engine.read_logs("iris-1-fails"), await until_no_actors(namespace)

    failed, log, left = run_engine(tmp_path, scenario, namespace=namespace)

    assert failed.state is ReplicaState.FAILED
    assert failed.message == "RuntimeError: cannot load"
    assert "Traceback" in log and "cannot load" in log
    assert left == set()
    assert list(cluster.node_tmp.glob("rtserve-iris-1-fails-*")) == []  # nothing left on the node


def test_killing_the_actor_makes_it_crashed_at_once(tmp_path: Path, driver: Any, slow_path: Path):
    async def scenario(engine: RayEngine) -> tuple[Any, ...]:
        observation = await start_ready(engine, make_spec(tmp_path, slow_path))
        assert observation.pid is not None
        running = asyncio.create_task(engine.invoke("iris", "1", slow_request(5.0), JSON, 30))
        await asyncio.sleep(0.5)
        killed_at = time.monotonic()
        os.kill(observation.pid, signal.SIGKILL)
        crashed = await wait_for_state(engine, "iris-1-a", {ReplicaState.CRASHED}, timeout=10)
        noticed_after = time.monotonic() - killed_at
        with pytest.raises(ConnectionError) as lost:
            await running
        with pytest.raises(NoReadyReplica):
            await engine.invoke("iris", "1", slow_request(0.0), JSON, 5)
        engine.forget("iris-1-a")
        return crashed, noticed_after, lost.value, engine.replicas()

    crashed, noticed_after, lost, remaining = run_engine(tmp_path, scenario)

    assert "died while it was serving" in crashed.message
    assert noticed_after < 2.0
    assert type(lost).__name__ == "ReplicaLost"  # sent, and may have run: not retried blindly
    assert remaining == []


def test_killing_an_actor_under_load_fails_only_its_requests_in_flight(tmp_path: Path, driver: Any, slow_path: Path):
    async def scenario(engine: RayEngine) -> tuple[Any, ...]:
        victim = await start_ready(engine, make_spec(tmp_path, slow_path, "iris-1-a"))
        await start_ready(engine, make_spec(tmp_path, slow_path, "iris-1-b"))
        outcomes: list[Any] = []
        stop = asyncio.Event()

        async def caller() -> None:
            while not stop.is_set():
                try:
                    outcomes.append((await engine.invoke("iris", "1", slow_request(0.02), JSON, 30)).status)
                except ConnectionError as exc:
                    outcomes.append(type(exc).__name__)

        callers = [asyncio.create_task(caller()) for _ in range(8)]
        await asyncio.sleep(1.0)
        served_before = len(outcomes)
        in_flight = observe(engine, "iris-1-a").in_flight  # nothing is dispatched between this and the kill
        assert victim.pid is not None
        os.kill(victim.pid, signal.SIGKILL)
        crashed = await wait_for_state(engine, "iris-1-a", {ReplicaState.CRASHED}, timeout=10)
        await asyncio.sleep(1.0)
        stop.set()
        await asyncio.gather(*callers)
        return outcomes[:served_before], outcomes[served_before:], in_flight, crashed, observe(engine, "iris-1-b")

    before, after, in_flight, crashed, survivor = run_engine(tmp_path, scenario)

    assert set(before) == {200}
    failed = [outcome for outcome in after if outcome != 200]
    assert set(failed) <= {"ReplicaLost"}  # sent and maybe run, so the gateway answers 503, not retried
    assert 0 < len(failed) <= in_flight
    assert set(after[len(after) // 2 :]) == {200}  # the other replica serves on
    assert "died while it was serving" in crashed.message
    assert survivor is not None and survivor.state is ReplicaState.READY


def test_stop_drains_in_flight_requests_then_kills_the_actor(
    tmp_path: Path, cluster: RayCluster, driver: Any, slow_path: Path
):
    namespace = f"t-{tmp_path.name}"[:60]

    async def scenario(engine: RayEngine) -> tuple[Any, ...]:
        observation = await start_ready(engine, make_spec(tmp_path, slow_path, "iris-1-drains"))
        requests = [
            asyncio.create_task(engine.invoke("iris", "1", slow_request(0.5, x), JSON, 30)) for x in (1.0, 2.0, 3.0)
        ]
        await asyncio.sleep(0.2)
        stopping = asyncio.create_task(engine.stop_replica("iris-1-drains"))
        await asyncio.sleep(0.05)
        seen = observe(engine, "iris-1-drains")
        with pytest.raises(NoReadyReplica):
            await engine.invoke("iris", "1", slow_request(0.0), JSON, 5)
        await stopping
        results = await asyncio.gather(*requests)
        return results, seen, engine.replicas(), observation.pid, await until_no_actors(namespace)

    results, seen, remaining, pid, left = run_engine(tmp_path, scenario, namespace=namespace)

    assert seen is not None and seen.state is ReplicaState.STOPPING
    assert [json.loads(result.body) for result in results] == [{"predictions": [x]} for x in (1.0, 2.0, 3.0)]
    assert remaining == []
    assert left == set()
    assert wait_until_gone(pid)  # ray.kill returns before the raylet has ended the process
    assert "Stopped" in (tmp_path / "logs" / "iris-1-drains.log").read_text()  # copied before the actor was killed
    assert list(cluster.node_tmp.glob("rtserve-iris-1-drains-*")) == []  # nothing left on the node


def test_a_request_past_its_timeout_raises_timeout_error_and_is_dropped(tmp_path: Path, driver: Any, slow_path: Path):
    async def scenario(engine: RayEngine) -> tuple[float, ReplicaState, Any]:
        await start_ready(engine, make_spec(tmp_path, slow_path))
        blocker = asyncio.create_task(engine.invoke("iris", "1", slow_request(1.0), JSON, 30))
        await asyncio.sleep(0.1)
        started = time.monotonic()
        with pytest.raises(TimeoutError):  # queued behind the blocker, then given up
            await engine.invoke("iris", "1", slow_request(2.0), JSON, 0.3)
        waited = time.monotonic() - started
        await blocker
        # The abandoned request left the queue unscored: the next one does not wait 2 s for it.
        quick_started = time.monotonic()
        await engine.invoke("iris", "1", slow_request(0.0), JSON, 30)
        return waited, observe(engine, "iris-1-a").state, time.monotonic() - quick_started

    waited, state, quick = run_engine(tmp_path, scenario)

    assert waited < 1.0
    assert state is ReplicaState.READY
    assert quick < 1.5


def test_a_new_engine_adopts_the_live_actors_without_restarting_them(
    tmp_path: Path, driver: Any, iris_path: Path, slow_path: Path
):
    namespace = f"t-{tmp_path.name}"[:60]

    async def scenario() -> tuple[Any, ...]:
        first = RayEngine(None, tmp_path / "data", namespace=namespace, keep_replicas_on_close=True)
        await first.start()
        await first.start_replica(make_spec(tmp_path, iris_path, "iris-1-a"))
        await first.start_replica(make_spec(tmp_path, slow_path, "slow-1-a", version="2", max_batch_size=4))
        before = {}
        for replica_id in ("iris-1-a", "slow-1-a"):
            observation = await wait_for_state(first, replica_id, SETTLED)
            assert observation.state is ReplicaState.READY, first.read_logs(replica_id)
            before[replica_id] = observation
        await first.close()  # a backend going away: its actors stay
        names_between = named_actors(namespace)

        # Another deployment (another data dir, so another seal key) sharing the namespace adopts nothing.
        stranger = RayEngine(None, tmp_path / "other-data", namespace=namespace, keep_replicas_on_close=True)
        await stranger.start()
        stranger_sees = stranger.replicas()
        await stranger.close()

        second = RayEngine(None, tmp_path / "data", namespace=namespace)
        await second.start()
        adopted = {o.replica_id: o for o in second.replicas()}
        answer = await second.invoke("iris", "1", iris_request(0), JSON, 30)
        names_after = named_actors(namespace)
        await second.close()  # not kept: stops and kills them
        return before, names_between, stranger_sees, adopted, answer, names_after, await until_no_actors(namespace)

    before, names_between, stranger_sees, adopted, answer, names_after, left = asyncio.run(
        asyncio.wait_for(scenario(), 180)
    )

    assert names_between == {"iris-1-a", "slow-1-a"}
    assert stranger_sees == []
    assert set(adopted) == {"iris-1-a", "slow-1-a"}
    for replica_id, observation in adopted.items():
        assert observation.state is ReplicaState.READY
        assert observation.pid == before[replica_id].pid  # the same process: not restarted
        assert observation.started_at == pytest.approx(before[replica_id].started_at, abs=2.0)
    assert answer.status == 200
    assert names_after == {"iris-1-a", "slow-1-a"}  # no duplicates
    assert left == set()


def test_replicas_can_be_placed_on_node_b(tmp_path: Path, driver: Any, iris_path: Path):
    node_b = next(node["NodeID"] for node in ray.nodes() if node["Alive"] and "nodeB" in node["Resources"])

    async def scenario(engine: RayEngine) -> list[str]:
        nodes = []
        for replica_id in ("iris-1-a", "iris-1-b"):
            await engine.start_replica(make_spec(tmp_path, iris_path, replica_id))
        for replica_id in ("iris-1-a", "iris-1-b"):
            observation = await wait_for_state(engine, replica_id, SETTLED)
            assert observation.state is ReplicaState.READY, engine.read_logs(replica_id)
            handle = ray.get_actor(replica_id, namespace=engine.namespace)
            nodes.append((await handle.describe.remote())["node_id"])
        assert (await engine.invoke("iris", "1", iris_request(0), JSON, 30)).status == 200
        return nodes

    nodes = run_engine(tmp_path, scenario, actor_options={"resources": {"nodeB": 0.01}})

    assert nodes == [node_b, node_b]


def test_new_replica_actors_of_a_version_are_spread_over_the_nodes(tmp_path: Path, driver: Any, iris_path: Path):
    namespace = f"t-{tmp_path.name}"[:60]

    async def scenario(engine: RayEngine) -> list[str]:
        for replica_id in ("iris-1-a", "iris-1-b"):
            await engine.start_replica(make_spec(tmp_path, iris_path, replica_id))
        for replica_id in ("iris-1-a", "iris-1-b"):
            assert (await wait_for_state(engine, replica_id, SETTLED)).state is ReplicaState.READY
        return [(await actor_of(namespace, replica_id))[1] for replica_id in ("iris-1-a", "iris-1-b")]

    nodes = run_engine(tmp_path, scenario, namespace=namespace)  # no warm pool: two new actors

    assert len(set(nodes)) == 2  # Ray's default may put both on the driver's node while it has room


def test_the_server_with_the_ray_engine_serves_a_model_and_adopts_its_replica_after_a_crash(
    tmp_path: Path, cluster: RayCluster, driver: Any
):
    """`rtserve server --engine ray` end to end: register, serve, score, logs; SIGKILL; a new server adopts."""
    from rtserve.server.client import BackendClient
    from rtserve.server.demo import request_bodies
    from rtserve.server.process import BackendProcess
    from tests.conftest import mlflow_pointing_at

    token = "rtsv-ray-engine-tests"
    env = cluster.driver_env
    args = ["--engine", "ray", "--ray-address", cluster.address]

    def backend() -> BackendProcess:
        return BackendProcess(tmp_path / "data", admin_token=token, extra_args=args, env=env).start()

    content_type, body = request_bodies()["dataframe_split"]
    first = backend()
    try:
        with mlflow_pointing_at(first.url, token):
            register_demo_model(first.url, name="iris-ray", versions=1)
        admin = BackendClient(first.url, token)
        try:
            admin.enable("iris-ray")
            admin.update_compute("iris-ray", "Production", "Small", max_batch_size=4, max_batch_wait_ms=2.0)
            admin.transition("iris-ray", "1", "Production")
            admin.wait_ready("iris-ray", ["1"], timeout=120)
            scored = admin.score("iris-ray", "Production", body, content_type)
            replicas = admin.replicas("iris-ray", "1")
            logs = admin.call(
                "GET",
                "/api/2.0/preview/mlflow/endpoints-v2/get-version-logs",
                params={"registered_model_name": "iris-ray", "endpoint_version_name": "1"},
            )["logs"]
        finally:
            admin.close()
        assert scored.status_code == 200, scored.text
        assert len(scored.json()["predictions"]) == 2
        assert [r["last_known_status"] for r in replicas] == ["READY"]
        assert "ready (batches of up to 4)" in logs
        replica_id = replicas[0]["replica_id"]
        # The warm pool (one idle actor per node, by default) settles beside the replica's actor.
        actors = until_settled_pool(replica_id, warm=2)
    finally:
        first.kill()  # SIGKILL: no shutdown, the actor stays on the cluster

    second = backend()
    try:
        admin = BackendClient(second.url, token)
        try:
            adopted = admin.replicas("iris-ray", "1")
            scored = admin.score("iris-ray", "Production", body, content_type)
            time.sleep(2.0)  # a few reconciler ticks: the adopted replica, batching as configured, is kept
            later = admin.replicas("iris-ray", "1")
        finally:
            admin.close()
        assert [(r["replica_id"], r["last_known_status"]) for r in adopted] == [(replica_id, "READY")]
        assert [(r["replica_id"], r["last_known_status"]) for r in later] == [(replica_id, "READY")]
        assert scored.status_code == 200, scored.text
        assert named_actors("rtserve") == actors  # the replica and the pool adopted: nothing started again
    finally:
        second.stop()  # a graceful stop stops the replicas too
    assert asyncio.run(until_no_actors("rtserve")) == set()


def test_invoke_through_ray_next_to_the_local_engine(tmp_path: Path, driver: Any, iris_path: Path):
    """Per-call latency (one caller) of the two engines on the same model, measured in alternation."""
    from rtserve.server.engines.local import LocalEngine

    async def latencies(engine: Any, rounds: int) -> list[float]:
        taken = []
        for row in range(rounds):
            started = time.perf_counter()
            result = await engine.invoke("iris", "1", iris_request(row % 150), JSON, 30)
            taken.append(time.perf_counter() - started)
            assert result.status == 200
        return taken

    async def scenario(ray_engine: RayEngine) -> dict[str, list[float]]:
        local = LocalEngine(str(tmp_path / "run"))
        await local.start()
        try:
            await start_ready(ray_engine, make_spec(tmp_path, iris_path, "iris-1-ray"))
            await local.start_replica(make_spec(tmp_path, iris_path, "iris-1-local"))
            while next(o for o in local.replicas()).state is ReplicaState.STARTING:
                await asyncio.sleep(0.05)
            taken: dict[str, list[float]] = {"local": [], "ray": []}
            for engine in (local, ray_engine):
                await latencies(engine, 30)  # warm
            for _ in range(5):
                for name, engine in (("local", local), ("ray", ray_engine)):
                    taken[name] += await latencies(engine, 60)
            return taken
        finally:
            await local.close()

    taken = run_engine(tmp_path, scenario)

    summary = {}
    for name, values in taken.items():
        values.sort()
        summary[name] = (values[len(values) // 2] * 1000, values[len(values) * 9 // 10] * 1000)
    print("invoke latency, ms (p50, p90): " + ", ".join(f"{k} {v[0]:.2f} / {v[1]:.2f}" for k, v in summary.items()))
    assert summary["ray"][0] < 50.0  # a sanity bound on a shared machine, not a benchmark


def until_settled_pool(replica_id: str, warm: int, timeout: float = 90.0) -> set[str]:
    """The actors of the `rtserve` namespace once they are the replica's and `warm` idle pool actors."""
    deadline = time.monotonic() + timeout
    while True:
        names = named_actors("rtserve")
        pool = {name for name in names if name.startswith("rtserve-warm-")}
        if len(pool) == warm + (replica_id not in names) and len(names) == warm + 1:
            return names
        assert time.monotonic() < deadline, names
        time.sleep(0.2)


async def wait_for_warm(engine: RayEngine, count: int, timeout: float = 90.0) -> dict[str, str]:
    """The engine's warm actors (name -> node id), once it has `count` of them."""
    deadline = time.monotonic() + timeout
    while len(warm := engine.warm_actors()) < count:
        assert time.monotonic() < deadline, warm
        await asyncio.sleep(0.05)
    return warm


async def actor_of(namespace: str, replica_id: str) -> tuple[str, str]:
    """(actor name, node id) of the actor that serves `replica_id`."""
    for name in named_actors(namespace):
        info = await ray.get_actor(name, namespace=namespace).describe.remote()
        if info["replica_id"] == replica_id:
            return name, info["node_id"]
    raise AssertionError(f"no actor serves {replica_id}")


def test_a_replica_starts_on_a_warm_actor_and_the_pool_refills(tmp_path: Path, driver: Any, iris_path: Path):
    namespace = f"t-{tmp_path.name}"[:60]

    async def scenario(engine: RayEngine) -> tuple[Any, ...]:
        warm = await wait_for_warm(engine, 2)  # one on each node
        started = time.monotonic()
        await start_ready(engine, make_spec(tmp_path, iris_path, "iris-1-w"))
        ready_after = time.monotonic() - started
        first = await actor_of(namespace, "iris-1-w")
        refilled = await wait_for_warm(engine, 2)
        await start_ready(engine, make_spec(tmp_path, iris_path, "iris-1-x"))
        second = await actor_of(namespace, "iris-1-x")
        answer = await engine.invoke("iris", "1", iris_request(0), JSON, 30)
        return warm, first, refilled, second, answer, ready_after, engine.read_logs("iris-1-w")

    warm, first, refilled, second, answer, ready_after, log = run_engine(
        tmp_path, scenario, namespace=namespace, warm_actors_per_node=1
    )

    assert len(set(warm.values())) == 2
    assert first[0] in warm  # the replica runs in a warm actor, not a new actor named after it
    assert first[0] not in refilled and len(set(refilled.values())) == 2  # the pool made another on that node
    assert second[0] in refilled and second[1] != first[1]  # the next replica of the version goes to the other node
    assert answer.status == 200
    assert "Warm actor" in log and "imported numpy, pandas, mlflow" in log  # the replica's log starts with its warm-up
    print(f"replica READY from a warm actor in {ready_after:.2f} s")


def test_a_placed_replica_runs_on_a_node_that_matches_or_waits_saying_none_does(
    tmp_path: Path, driver: Any, iris_path: Path
):
    namespace = f"t-{tmp_path.name}"[:60]
    node_b = next(node["NodeID"] for node in ray.nodes() if node["Alive"] and "nodeB" in node["Resources"])
    unplaceable = {
        "iris-1-nolabel": {"node_labels": {"rtserve.test/node": "z"}},
        "iris-1-noresource": {"resources": {"nowhere": 1.0}},
    }

    async def scenario(engine: RayEngine) -> tuple[Any, ...]:
        warm = await wait_for_warm(engine, 2)  # one on each node
        started = time.monotonic()
        await start_ready(engine, make_spec(tmp_path, iris_path, "iris-1-l", node_labels=dict(NODE_B_LABELS)))
        labelled = await actor_of(namespace, "iris-1-l")
        from_warm, started = time.monotonic() - started, time.monotonic()
        await start_ready(engine, make_spec(tmp_path, iris_path, "iris-1-r", resources={"nodeB": 0.01}))
        reserved = await actor_of(namespace, "iris-1-r")
        as_new = time.monotonic() - started
        print(f"READY from a warm actor on the labelled node in {from_warm:.2f} s, as a new actor in {as_new:.2f} s")
        for replica_id, placement in unplaceable.items():
            await engine.start_replica(make_spec(tmp_path, iris_path, replica_id, **placement))
        await asyncio.sleep(3 * engine.health_interval + 1)
        waiting = {o.replica_id: o for o in engine.replicas() if o.replica_id in unplaceable}
        answer = await engine.invoke("iris", "1", iris_request(0), JSON, 30)
        stopping = time.monotonic()
        for replica_id in unplaceable:
            await engine.stop_replica(replica_id)
        return warm, labelled, reserved, waiting, answer, time.monotonic() - stopping

    warm, labelled, reserved, waiting, answer, stopped_in = run_engine(
        tmp_path, scenario, namespace=namespace, warm_actors_per_node=1
    )

    # The labelled replica took the warm actor of the one node with its label.
    assert labelled[1] == node_b and labelled[0] in warm and warm[labelled[0]] == node_b
    # A warm actor holds no custom resource: the replica that needs one is a new actor that reserves it.
    assert reserved == ("iris-1-r", node_b)
    assert answer.status == 200
    # Ray keeps them pending without a word; the replica says what no node has.
    assert {replica_id: o.state for replica_id, o in waiting.items()} == dict.fromkeys(
        unplaceable, ReplicaState.STARTING
    )
    assert "no live node of the Ray cluster has the labels rtserve.test/node=z" in waiting["iris-1-nolabel"].message
    assert "no live node of the Ray cluster has the resources nowhere=1" in waiting["iris-1-noresource"].message
    # An actor Ray never placed has nothing to drain: stopping it does not wait out the drain timeout.
    assert stopped_in < 10, f"stopping two replicas that wait for a node took {stopped_in:.1f} s"


def test_a_new_engine_adopts_the_warm_pool_without_leaking_or_duplicating(tmp_path: Path, driver: Any, iris_path: Path):
    namespace = f"t-{tmp_path.name}"[:60]

    async def scenario() -> tuple[Any, ...]:
        first = RayEngine(
            None, tmp_path / "data", namespace=namespace, keep_replicas_on_close=True, warm_actors_per_node=1
        )
        await first.start()
        await wait_for_warm(first, 2)
        before = await start_ready(first, make_spec(tmp_path, iris_path, "iris-1-a"))
        idle = await wait_for_warm(first, 2)
        await first.close()  # a backend going away: its replica and its pool stay
        names_between = named_actors(namespace)

        second = RayEngine(None, tmp_path / "data", namespace=namespace, health_interval=0.2, warm_actors_per_node=1)
        await second.start()
        adopted_idle = await wait_for_warm(second, 2)
        await asyncio.sleep(1.0)  # a few tendings of the pool: nothing more is started
        adopted = second.replicas()
        names_after = named_actors(namespace)
        await second.close()  # not kept: the replica and the pool actors are ended
        return before, idle, names_between, adopted_idle, adopted, names_after, await until_no_actors(namespace)

    before, idle, names_between, adopted_idle, adopted, names_after, left = asyncio.run(
        asyncio.wait_for(scenario(), 180)
    )

    assert len(names_between) == 3 and set(idle) <= names_between  # the replica's actor and two idle ones
    assert adopted_idle == idle
    assert [(o.replica_id, o.state, o.pid) for o in adopted] == [("iris-1-a", ReplicaState.READY, before.pid)]
    assert names_after == names_between  # no leak, no duplicate
    assert left == set()


def until_node_with(resource: str, timeout: float = 60.0) -> str:
    """The id of the alive node that has `resource`, once it has joined (asked through this driver)."""
    deadline = time.monotonic() + timeout
    while not (ids := [n["NodeID"] for n in ray.nodes() if n["Alive"] and resource in n["Resources"]]):
        assert time.monotonic() < deadline, f"no node with {resource} joined"
        time.sleep(0.2)
    return str(ids[0])


def test_the_replicas_of_a_lost_node_are_crashed_and_their_replacements_serve_from_another_node(
    tmp_path: Path, cluster: RayCluster, driver: Any, iris_path: Path
):
    """A node killed under two READY replicas: both CRASHED within seconds, their replacements READY elsewhere."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    node = cluster.add_node(NODE_C_IP, {"nodeC": 1}, wait=False)
    node_c = until_node_with("nodeC")
    namespace = f"t-{tmp_path.name}"[:60]

    async def node_of(replica_id: str) -> str:
        return str((await ray.get_actor(replica_id, namespace=namespace).describe.remote())["node_id"])

    async def scenario(engine: RayEngine) -> tuple[Any, ...]:
        for replica_id in ("iris-1-a", "iris-1-b"):
            await engine.start_replica(make_spec(tmp_path, iris_path, replica_id))
        for replica_id in ("iris-1-a", "iris-1-b"):
            assert (await wait_for_state(engine, replica_id, SETTLED)).state is ReplicaState.READY
        first = [await node_of(replica_id) for replica_id in ("iris-1-a", "iris-1-b")]
        lost_at = time.monotonic()
        await asyncio.to_thread(cluster.kill_node, node)
        crashed = [await wait_for_state(engine, r, {ReplicaState.CRASHED}, 45) for r in ("iris-1-a", "iris-1-b")]
        noticed_after = time.monotonic() - lost_at
        with pytest.raises(NoReadyReplica):
            await engine.invoke("iris", "1", iris_request(0), JSON, 5)
        # What the controller does with a CRASHED replica: forget it, start another (same placement).
        for replica_id in ("iris-1-a", "iris-1-b"):
            engine.forget(replica_id)
        for replica_id in ("iris-1-c", "iris-1-d"):
            await engine.start_replica(make_spec(tmp_path, iris_path, replica_id))
        for replica_id in ("iris-1-c", "iris-1-d"):
            assert (await wait_for_state(engine, replica_id, SETTLED)).state is ReplicaState.READY
        replaced = [await node_of(replica_id) for replica_id in ("iris-1-c", "iris-1-d")]
        answer = await engine.invoke("iris", "1", iris_request(0), JSON, 30)
        return first, crashed, noticed_after, replaced, answer

    # Soft affinity: node C while it lives (so that losing it loses both), any node with room after.
    strategy = NodeAffinitySchedulingStrategy(node_c, soft=True)
    first, crashed, noticed_after, replaced, answer = run_engine(
        tmp_path, scenario, namespace=namespace, actor_options={"scheduling_strategy": strategy}
    )

    assert first == [node_c, node_c]
    # Told by Ray (the node was lost), or by the health checks if they give up first.
    assert all(re.search("node .* was lost|health checks", o.message) for o in crashed), crashed
    assert node_c not in replaced
    assert answer.status == 200
    print(f"lost node noticed after {noticed_after:.1f} s; replicas: {[o.message for o in crashed]}")


def test_a_following_engine_never_starts_an_actor_nor_touches_the_warm_pool(
    tmp_path: Path, driver: Any, iris_path: Path
):
    """The leader's replica and pool, then a follower on the same namespace: it routes, and changes nothing."""
    namespace = f"t-{tmp_path.name}"[:60]
    options = {"namespace": namespace, "health_interval": 0.2, "warm_actors_per_node": 1, "discover": True}

    async def scenario() -> tuple[Any, ...]:
        leader = RayEngine(None, tmp_path / "data", **options)
        follower = RayEngine(None, tmp_path / "data", **options)  # same data dir: the same seal key
        follower.set_leading(False)
        await leader.start()
        try:
            await wait_for_warm(leader, 2)
            await start_ready(leader, make_spec(tmp_path, iris_path, "iris-1-a"))
            await wait_for_warm(leader, 2)
            before = named_actors(namespace)
            await follower.start()
            followed = await wait_for_state(follower, "iris-1-a", {ReplicaState.READY}, timeout=30)
            await asyncio.sleep(2.0)  # ten health checks and pool tendings
            with pytest.raises(ValueError, match="follows"):
                await follower.start_replica(make_spec(tmp_path, iris_path, "iris-1-b"))
            answer = await follower.invoke("iris", "1", iris_request(0), JSON, 30)
            pool_seen = follower.warm_actors()
            await follower.close()  # a follower leaving ends nothing
            return before, followed, answer, pool_seen, named_actors(namespace)
        finally:
            await leader.close()

    before, followed, answer, pool_seen, after = asyncio.run(asyncio.wait_for(scenario(), 180))

    assert len(before) == 3  # the replica's actor and one warm actor per node
    assert followed.replica_id == "iris-1-a"
    assert answer.status == 200  # a follower routes to the leader's replicas
    assert pool_seen == {}  # it holds no warm actor to start from
    assert after == before  # no actor made, taken or killed by the follower


@ray.remote
class SilentActor:
    """An actor of the namespace that never answers `describe` (as a new actor whose process is starting)."""

    def describe(self) -> None:
        time.sleep(600)


def test_a_follower_finds_a_new_replica_while_another_actor_has_not_answered_yet(
    tmp_path: Path, driver: Any, iris_path: Path
):
    """Discovery does not wait on an actor that is slow to describe itself: the follower finds the replica
    the leader just started within about a tick, not after the other actor's `ping_timeout`."""
    namespace = f"t-{tmp_path.name}"[:60]
    options = {"namespace": namespace, "health_interval": 0.2, "ping_timeout": 60.0, "discover": True}

    async def scenario() -> float:
        leader = RayEngine(None, tmp_path / "data", **options)
        follower = RayEngine(None, tmp_path / "data", **options)
        follower.set_leading(False)
        await leader.start()
        await follower.start()
        # After the starts (each waits up to ping_timeout for every actor to describe itself, at start only).
        silent = SilentActor.options(name="silent", namespace=namespace, num_cpus=0).remote()
        try:
            await asyncio.sleep(1.0)  # the follower's discovery is asking the silent actor by now
            await start_ready(leader, make_spec(tmp_path, iris_path, "iris-1-a"))
            ready_at = time.monotonic()
            await wait_for_state(follower, "iris-1-a", {ReplicaState.READY}, timeout=50)
            return time.monotonic() - ready_at
        finally:
            ray.kill(silent)
            await follower.close()
            await leader.close()

    lag = asyncio.run(asyncio.wait_for(scenario(), 180))

    assert lag < 20, f"the follower found the replica {lag:.1f} s after it was READY"
    print(f"the follower found the replica {lag:.2f} s after it was READY")


async def replica_actors(namespace: str) -> list[str]:
    """The replica id of every actor of the namespace that serves one (idle warm actors serve none)."""
    infos = [await ray.get_actor(name, namespace=namespace).describe.remote() for name in named_actors(namespace)]
    return sorted(str(info["replica_id"]) for info in infos if info.get("replica_id"))


async def until_held(claims: SlotClaims, expected: dict[str, str], timeout: float = 10.0) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while (held := await asyncio.to_thread(claims.held)) != expected and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    return held


def test_two_leaders_start_a_slot_once_a_dead_replicas_slot_is_refilled_and_a_restart_keeps_its_claims(
    tmp_path: Path, driver: Any, iris_path: Path, postgres_url: str
):
    """Two leaders for a moment (two engines, each its own claims on one PostgreSQL) asked for the same slot."""
    from rtserve.server.engines.base import SlotTaken
    from rtserve.server.store import db

    namespace = f"t-{tmp_path.name}"[:60]
    options = {"namespace": namespace, "health_interval": 0.2, "discover": True, "keep_replicas_on_close": True}
    databases = [db.make_engine(postgres_url) for _ in range(2)]
    claims = [SlotClaims(db.session_factory(database), f"leader-{n}") for n, database in enumerate(databases)]
    slot = {"slot_group": "iris/1/0123456789ab", "slots": 1}
    events: dict[str, Any] = {}

    async def scenario() -> None:
        old = RayEngine(None, tmp_path / "data", warm_actors_per_node=1, claims=claims[0], **options)
        await old.start()
        await wait_for_warm(old, 2)
        # Another instance leading too, for a moment; its first look for new actors is 3 s away (a leader
        # finding a replica still loading for another kills it: not what this test is about).
        new = RayEngine(None, tmp_path / "data", claims=claims[1], **{**options, "health_interval": 3.0})
        await new.start()
        try:
            await old.start_replica(make_spec(tmp_path, iris_path, "iris-1-a", **slot))
            with pytest.raises(SlotTaken):  # before it could find the other's actor: fenced by the slot
                await new.start_replica(make_spec(tmp_path, iris_path, "iris-1-b", **slot))
            new.set_leading(False)  # the moment is over: `new` follows
            ready = await wait_for_state(old, "iris-1-a", SETTLED)
            assert ready.state is ReplicaState.READY, old.read_logs("iris-1-a")
            await wait_for_state(new, "iris-1-a", {ReplicaState.READY}, timeout=30)
            events["seen"] = {o.replica_id for engine in (old, new) for o in engine.replicas()}
            events["actors"] = await replica_actors(namespace)
            events["held"] = await asyncio.to_thread(claims[0].held)

            assert ready.pid is not None
            os.kill(ready.pid, signal.SIGKILL)
            await wait_for_state(old, "iris-1-a", {ReplicaState.CRASHED}, timeout=10)
            events["after_death"] = await until_held(claims[0], {})
            old.forget("iris-1-a")
            await start_ready(old, make_spec(tmp_path, iris_path, "iris-1-c", **slot))
            refilled = await asyncio.to_thread(claims[0].held)
            events["refilled"] = refilled
            pid = observe(old, "iris-1-c").pid  # type: ignore[union-attr]
            await old.close()  # a restart of the leader: its replica and claim stay

            restarted = RayEngine(None, tmp_path / "data", claims=claims[0], **options)
            restarted.keep_replicas_on_close = False
            await restarted.start()
            try:
                adopted = observe(restarted, "iris-1-c")
                events["adopted"] = (adopted.state, adopted.pid == pid) if adopted else None
                with pytest.raises(SlotTaken):  # its own adopted replica holds the slot
                    await restarted.start_replica(make_spec(tmp_path, iris_path, "iris-1-d", **slot))
                events["restarted_held"] = await asyncio.to_thread(claims[0].held)
                events["restarted_actors"] = await replica_actors(namespace)
            finally:
                await restarted.close()  # not kept: the replica stops and its slot is free
            events["closed_held"] = await until_held(claims[0], {})
        finally:
            await new.close()
            await old.close()
            for name in named_actors(namespace):  # the warm actors `old` left for the next leader
                ray.kill(ray.get_actor(name, namespace=namespace), no_restart=True)

    try:
        asyncio.run(asyncio.wait_for(scenario(), 150))
    finally:
        for database in databases:
            database.dispose()

    assert events["seen"] == {"iris-1-a"}  # both leaders see one replica: the first's
    assert events["actors"] == ["iris-1-a"]  # one actor serves it (the second made or took none)
    assert events["held"] == {"iris/1/0123456789ab/0": "iris-1-a"}
    assert events["after_death"] == {}  # released when the leader found it dead
    assert events["refilled"] == {"iris/1/0123456789ab/0": "iris-1-c"}
    assert events["adopted"] == (ReplicaState.READY, True)  # the same process: not restarted
    assert events["restarted_held"] == {"iris/1/0123456789ab/0": "iris-1-c"}
    assert events["restarted_actors"] == ["iris-1-c"]
    assert events["closed_held"] == {}


def test_a_new_leader_killing_an_actor_the_old_one_never_gave_its_model_frees_its_slot_at_once(
    tmp_path: Path, driver: Any, iris_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
):
    """The old leader claims a slot, makes the actor and dies while packing the model: the new leader
    finds the actor waiting, kills it, and releases the slot (not 30 s later, when the claim is stale)."""
    import threading

    from rtserve.server.engines.ray import artifacts
    from rtserve.server.store import db

    namespace = f"t-{tmp_path.name}"[:60]
    options = {"namespace": namespace, "health_interval": 0.2, "discover": True, "keep_replicas_on_close": True}
    database = db.make_engine(postgres_url)
    claims = SlotClaims(db.session_factory(database), "leader", grace=300)
    dying = threading.Event()
    monkeypatch.setattr(artifacts, "pack", lambda *_: dying.wait(60))  # the old leader never ships it

    async def scenario() -> tuple[dict[str, str], dict[str, str], set[str]]:
        old = RayEngine(None, tmp_path / "data", claims=claims, **options)
        await old.start()
        await old.start_replica(make_spec(tmp_path, iris_path, "iris-1-a", slot_group="iris/1/0123456789ab", slots=1))
        claimed = await asyncio.to_thread(claims.held)
        await old.close()  # the old leader gone, its actor made and waiting for a model
        dying.set()
        new = RayEngine(None, tmp_path / "data", claims=claims, **options)
        await new.start()
        try:
            released = await until_held(claims, {}, timeout=30)
            return claimed, released, await until_no_actors(namespace)
        finally:
            await new.close()

    try:
        claimed, released, actors = asyncio.run(asyncio.wait_for(scenario(), 90))
    finally:
        database.dispose()
    assert claimed == {"iris/1/0123456789ab/0": "iris-1-a"}
    assert released == {}
    assert actors == set()  # killed
