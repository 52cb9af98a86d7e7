"""The local engine with real replica processes serving real MLflow models."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pytest

from rtserve.server.engines.base import NoReadyReplica, ReplicaObservation, ReplicaSpec, ReplicaState
from rtserve.server.engines.local import LocalEngine
from tests.engines.replica_waits import SETTLED, observe, start_ready, wait_for_state
from tests.worker.models import iris_frame

pytestmark = pytest.mark.api

JSON = "application/json"


def run_engine(tmp_path: Path, scenario: Callable[[LocalEngine], Awaitable[Any]], **options: Any) -> Any:
    async def main() -> Any:
        engine = LocalEngine(str(tmp_path / "run"), **options)
        await engine.start()
        try:
            return await scenario(engine)
        finally:
            await engine.close()

    return asyncio.run(asyncio.wait_for(main(), 90))


def make_spec(tmp_path: Path, model_path: Path, replica_id: str = "iris-1-a", version: str = "1", **env: str):
    return ReplicaSpec(
        replica_id=replica_id,
        model_name="iris",
        version=version,
        model_uri=str(model_path),
        log_path=str(tmp_path / "logs" / f"{replica_id}.log"),
        env=env,
    )


def iris_request(row: int) -> bytes:
    features, _ = iris_frame()
    return json.dumps(
        {"dataframe_split": json.loads(features.iloc[[row]].to_json(orient="split", index=False))}
    ).encode()


def slow_request(seconds: float, x: float = 1.0) -> bytes:
    return json.dumps({"dataframe_records": [{"x": x}], "params": {"seconds": seconds}}).encode()


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_replica_becomes_ready_and_scores_like_the_loaded_model(tmp_path: Path, iris_path: Path):
    async def scenario(engine: LocalEngine) -> tuple[list[float], ReplicaObservation, Any]:
        timings = []
        for replica_id in ("iris-1-a", "iris-1-b"):  # the first may wait for the fork server's imports
            started = time.perf_counter()
            await engine.start_replica(make_spec(tmp_path, iris_path, replica_id))
            assert observe(engine, replica_id).state is ReplicaState.STARTING
            await wait_for_state(engine, replica_id, SETTLED)
            timings.append(time.perf_counter() - started)
        result = await engine.invoke("iris", "1", iris_request(120), JSON, 10)
        return timings, observe(engine, "iris-1-b"), result

    timings, observation, result = run_engine(tmp_path, scenario, wall_clock=lambda: 1234.5)

    print(f"start-to-READY: first {timings[0]:.3f} s (cold fork server), then {timings[1]:.3f} s")
    assert observation.state is ReplicaState.READY
    assert observation.started_at == 1234.5 and observation.pid and observation.in_flight == 0
    assert timings[1] < 5.0
    features, _ = iris_frame()
    expected = mlflow.pyfunc.load_model(str(iris_path)).predict(features.iloc[[120]])
    assert result.status == 200
    assert json.loads(result.body) == {"predictions": expected.tolist()}


def test_fifty_concurrent_requests_over_two_replicas_all_get_their_own_answer(tmp_path: Path, iris_path: Path):
    rows = list(range(0, 150, 3))
    features, _ = iris_frame()
    expected = mlflow.pyfunc.load_model(str(iris_path)).predict(features.iloc[rows]).tolist()

    async def scenario(engine: LocalEngine) -> list[Any]:
        await start_ready(engine, make_spec(tmp_path, iris_path, "iris-1-a"))
        await start_ready(engine, make_spec(tmp_path, iris_path, "iris-1-b"))
        results = await asyncio.gather(*(engine.invoke("iris", "1", iris_request(row), JSON, 30) for row in rows))
        assert all(o.in_flight == 0 for o in engine.replicas())
        return results

    results = run_engine(tmp_path, scenario)

    assert len(results) == 50
    assert [json.loads(result.body)["predictions"][0] for result in results] == expected


def test_requests_go_to_the_replica_with_the_fewest_in_flight(tmp_path: Path, slow_path: Path):
    async def scenario(engine: LocalEngine) -> list[int]:
        for replica_id in ("slow-a", "slow-b"):
            await start_ready(engine, make_spec(tmp_path, slow_path, replica_id))
        requests = [asyncio.create_task(engine.invoke("iris", "1", slow_request(0.4), JSON, 10)) for _ in range(4)]
        await asyncio.sleep(0.1)
        in_flight = sorted(o.in_flight for o in engine.replicas())
        await asyncio.gather(*requests)
        return in_flight

    assert run_engine(tmp_path, scenario) == [2, 2]


def test_the_spec_environment_reaches_the_model(tmp_path: Path, env_echo_path: Path):
    async def scenario(engine: LocalEngine) -> Any:
        await start_ready(engine, make_spec(tmp_path, env_echo_path, RTSERVE_TEST_MARKER="from-the-spec"))
        body = {"dataframe_records": [{"x": 1.0}], "params": {"name": "RTSERVE_TEST_MARKER"}}
        return await engine.invoke("iris", "1", json.dumps(body).encode(), JSON, 10)

    assert json.loads(run_engine(tmp_path, scenario).body) == {"predictions": ["from-the-spec"]}


@pytest.mark.parametrize(
    ("model_fixture", "expected_message"),
    [
        ("failing_load_path", "RuntimeError: cannot load"),
        ("missing_file_path", "model.skops"),
        ("exiting_load_path", "exited with code 3 before it was ready; see the replica log"),
    ],
    ids=["load_context raises", "model file missing", "process exits while loading"],
)
def test_a_model_that_cannot_load_is_failed_with_the_loaders_message(
    request: pytest.FixtureRequest, tmp_path: Path, model_fixture: str, expected_message: str
):
    model_path = request.getfixturevalue(model_fixture)

    async def scenario(engine: LocalEngine) -> tuple[ReplicaObservation, str]:
        await engine.start_replica(make_spec(tmp_path, model_path))
        observation = await wait_for_state(engine, "iris-1-a", SETTLED)
        with pytest.raises(NoReadyReplica):
            await engine.invoke("iris", "1", b"{}", JSON, 5)
        return observation, engine.read_logs("iris-1-a")

    observation, log = run_engine(tmp_path, scenario)

    assert observation.state is ReplicaState.FAILED
    assert expected_message in observation.message
    assert "loading" in log
    if model_fixture == "failing_load_path":
        assert "Traceback" in log and "cannot load" in log


def test_a_ready_replica_killed_with_sigkill_is_crashed(tmp_path: Path, iris_path: Path):
    async def scenario(engine: LocalEngine) -> ReplicaObservation:
        observation = await start_ready(engine, make_spec(tmp_path, iris_path))
        os.kill(observation.pid, signal.SIGKILL)
        crashed = await wait_for_state(engine, "iris-1-a", {ReplicaState.CRASHED}, timeout=5)
        with pytest.raises(NoReadyReplica):
            await engine.invoke("iris", "1", iris_request(0), JSON, 5)
        return crashed

    crashed = run_engine(tmp_path, scenario)

    assert "killed by signal SIGKILL" in crashed.message


def test_a_replica_dying_mid_request_fails_the_request_and_is_crashed_at_once(tmp_path: Path, slow_path: Path):
    async def scenario(engine: LocalEngine) -> tuple[ReplicaState, ReplicaObservation]:
        observation = await start_ready(engine, make_spec(tmp_path, slow_path))
        request = asyncio.create_task(engine.invoke("iris", "1", slow_request(5.0), JSON, 10))
        await asyncio.sleep(0.2)
        os.kill(observation.pid, signal.SIGKILL)
        with pytest.raises(ConnectionError):
            await request
        state_right_after = observe(engine, "iris-1-a").state
        return state_right_after, await wait_for_state(engine, "iris-1-a", {ReplicaState.CRASHED})

    state_right_after, crashed = run_engine(tmp_path, scenario)

    assert state_right_after is ReplicaState.CRASHED
    assert crashed.in_flight == 0


def test_a_replica_that_stops_answering_health_checks_is_killed_and_crashed(tmp_path: Path, iris_path: Path):
    async def scenario(engine: LocalEngine) -> tuple[ReplicaObservation, bool]:
        observation = await start_ready(engine, make_spec(tmp_path, iris_path))
        os.kill(observation.pid, signal.SIGSTOP)  # alive but frozen: only the pings can tell
        crashed = await wait_for_state(engine, "iris-1-a", {ReplicaState.CRASHED}, timeout=10)
        await asyncio.sleep(0.5)
        return crashed, process_exists(observation.pid)

    crashed, still_exists = run_engine(tmp_path, scenario, health_interval=0.1, ping_timeout=0.2)

    assert "did not answer 3 health checks" in crashed.message
    assert not still_exists


def test_stop_replica_lets_in_flight_requests_finish_then_forgets_it(tmp_path: Path, slow_path: Path):
    async def scenario(engine: LocalEngine) -> tuple[list[Any], list[ReplicaState], list[ReplicaObservation], int]:
        observation = await start_ready(engine, make_spec(tmp_path, slow_path))
        requests = [
            asyncio.create_task(engine.invoke("iris", "1", slow_request(0.3, x), JSON, 10)) for x in (1.0, 2.0, 3.0)
        ]
        await asyncio.sleep(0.1)
        stopping = asyncio.create_task(engine.stop_replica("iris-1-a"))
        await asyncio.sleep(0.05)
        seen = [observe(engine, "iris-1-a").state]
        with pytest.raises(NoReadyReplica):
            await engine.invoke("iris", "1", slow_request(0.0), JSON, 5)
        await stopping
        results = await asyncio.gather(*requests)
        return results, seen, engine.replicas(), observation.pid

    results, seen, remaining, pid = run_engine(tmp_path, scenario)

    assert seen == [ReplicaState.STOPPING]
    assert [json.loads(result.body) for result in results] == [{"predictions": [x]} for x in (1.0, 2.0, 3.0)]
    assert remaining == []
    assert not process_exists(pid)


def test_a_replica_can_be_stopped_while_it_is_starting(tmp_path: Path, iris_path: Path):
    async def scenario(engine: LocalEngine) -> tuple[ReplicaState, list[ReplicaObservation]]:
        await engine.start_replica(make_spec(tmp_path, iris_path))
        state = observe(engine, "iris-1-a").state
        await engine.stop_replica("iris-1-a")
        return state, engine.replicas()

    assert run_engine(tmp_path, scenario) == (ReplicaState.STARTING, [])


def test_stop_replica_kills_a_replica_that_does_not_drain_in_time(tmp_path: Path, slow_path: Path):
    async def scenario(engine: LocalEngine) -> float:
        await start_ready(engine, make_spec(tmp_path, slow_path))
        request = asyncio.create_task(engine.invoke("iris", "1", slow_request(30.0), JSON, 60))
        await asyncio.sleep(0.2)
        started = time.monotonic()
        await engine.stop_replica("iris-1-a")
        with pytest.raises(ConnectionError):
            await request
        return time.monotonic() - started

    assert run_engine(tmp_path, scenario, stop_timeout=0.5) < 5.0


def test_a_request_past_its_timeout_raises_timeout_error_and_the_replica_stays_ready(tmp_path: Path, slow_path: Path):
    async def scenario(engine: LocalEngine) -> ReplicaState:
        await start_ready(engine, make_spec(tmp_path, slow_path))
        with pytest.raises(TimeoutError):
            await engine.invoke("iris", "1", slow_request(1.0), JSON, 0.2)
        return observe(engine, "iris-1-a").state

    assert run_engine(tmp_path, scenario) is ReplicaState.READY


def test_invoking_a_version_without_ready_replicas_raises_no_ready_replica(tmp_path: Path, iris_path: Path):
    async def scenario(engine: LocalEngine) -> None:
        await start_ready(engine, make_spec(tmp_path, iris_path))
        with pytest.raises(NoReadyReplica):
            await engine.invoke("iris", "2", iris_request(0), JSON, 5)
        with pytest.raises(NoReadyReplica):
            await engine.invoke("other", "1", iris_request(0), JSON, 5)

    run_engine(tmp_path, scenario)


def test_failed_replicas_can_be_forgotten_and_their_logs_stay_readable(tmp_path: Path, failing_load_path: Path):
    async def scenario(engine: LocalEngine) -> tuple[list[ReplicaObservation], str, str]:
        await engine.start_replica(make_spec(tmp_path, failing_load_path))
        await wait_for_state(engine, "iris-1-a", SETTLED)
        engine.forget("iris-1-a")
        return engine.replicas(), engine.read_logs("iris-1-a"), engine.read_logs("iris-1-a", max_bytes=200)

    remaining, log, tail = run_engine(tmp_path, scenario)

    assert remaining == []
    assert "cannot load" in log
    assert len(tail.encode()) <= 200 and log.endswith(tail)
    with pytest.raises(KeyError):
        LocalEngine(str(tmp_path / "other")).read_logs("iris-1-a")


def test_live_replicas_cannot_be_forgotten_or_started_twice(tmp_path: Path, iris_path: Path):
    async def scenario(engine: LocalEngine) -> None:
        await start_ready(engine, make_spec(tmp_path, iris_path))
        with pytest.raises(ValueError):
            engine.forget("iris-1-a")
        with pytest.raises(ValueError):
            await engine.start_replica(make_spec(tmp_path, iris_path))

    run_engine(tmp_path, scenario)


def test_close_stops_every_replica_quickly(tmp_path: Path, iris_path: Path):
    async def scenario() -> tuple[list[int], float]:
        engine = LocalEngine(str(tmp_path / "run"))
        await engine.start()
        pids = [(await start_ready(engine, make_spec(tmp_path, iris_path, f"iris-1-{n}"))).pid for n in "ab"]
        started = time.monotonic()
        await engine.close()
        return pids, time.monotonic() - started

    pids, elapsed = asyncio.run(scenario())

    assert elapsed < 3.0
    assert not any(process_exists(pid) for pid in pids)


# -- replica logs ------------------------------------------------------------------------------

STAMPED = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ")


def test_every_line_of_a_replica_log_is_timestamped_and_the_log_rotates(tmp_path: Path, iris_path: Path):
    spec = make_spec(tmp_path, iris_path)

    async def scenario(engine: LocalEngine) -> tuple[str, str]:
        await start_ready(engine, spec)
        before = engine.read_logs("iris-1-a")
        for _ in range(30):  # each bad request logs a line or two
            await engine.invoke("iris", "1", b'{"dataframe_records": [{"nope": 1}]}', JSON, 10)
        await engine.stop_replica("iris-1-a")
        return before, engine.read_logs("iris-1-a", max_bytes=100_000)

    before, after = run_engine(tmp_path, scenario, log_max_bytes=2048)

    assert "loading" in before and "serving on" in before
    assert all(STAMPED.match(line) for line in (before + after).splitlines())
    assert Path(spec.log_path).stat().st_size <= 2048
    assert Path(spec.log_path + ".1").stat().st_size <= 2048
    assert after.endswith("Stopped\n")
    # read_logs continues into the rotated part when the current file holds less than asked for
    assert len(after) > Path(spec.log_path).stat().st_size


def test_what_a_replica_printed_just_before_it_was_killed_is_in_its_log(tmp_path: Path, dying_path: Path):
    async def scenario(engine: LocalEngine) -> tuple[ReplicaObservation, str]:
        await start_ready(engine, make_spec(tmp_path, dying_path))
        with pytest.raises(ConnectionError):
            await engine.invoke("iris", "1", json.dumps({"dataframe_records": [{"x": 1.0}]}).encode(), JSON, 10)
        await wait_for_state(engine, "iris-1-a", {ReplicaState.CRASHED}, timeout=5)  # at once: the connection broke
        deadline = time.monotonic() + 5
        while "signal" not in observe(engine, "iris-1-a").message and time.monotonic() < deadline:
            await asyncio.sleep(0.01)  # then the exit status comes in, and the log is complete
        return observe(engine, "iris-1-a"), engine.read_logs("iris-1-a")

    crashed, log = run_engine(tmp_path, scenario)

    assert "killed by signal SIGKILL" in crashed.message
    assert "last words on stdout" in log and "last words on stderr" in log


# -- batching ----------------------------------------------------------------------------------


def test_a_batching_replica_answers_many_concurrent_callers_exactly_like_the_model(tmp_path: Path, iris_path: Path):
    features, _ = iris_frame()
    model = mlflow.pyfunc.load_model(str(iris_path))
    row_sets = [list(range(start, start + 1 + start % 5)) for start in range(0, 140, 3)]
    spec = dataclasses.replace(make_spec(tmp_path, iris_path), max_batch_size=16, max_batch_wait_ms=5)

    async def scenario(engine: LocalEngine) -> tuple[list[Any], str]:
        await start_ready(engine, spec)
        bodies = [
            json.dumps({"dataframe_records": features.iloc[rows].to_dict(orient="records")}).encode()
            for rows in row_sets
        ]
        results = await asyncio.gather(*(engine.invoke("iris", "1", body, JSON, 30) for body in bodies))
        return results, engine.read_logs("iris-1-a")

    results, log = run_engine(tmp_path, scenario)

    assert [json.loads(result.body) for result in results] == [
        {"predictions": model.predict(features.iloc[rows]).tolist()} for rows in row_sets
    ]
    assert "batches of up to 16" in log


# -- abandoned requests ------------------------------------------------------------------------


def test_requests_whose_callers_gave_up_are_not_scored_for_nobody(tmp_path: Path, slow_path: Path):
    async def scenario(engine: LocalEngine) -> tuple[float, Any, int]:
        await start_ready(engine, make_spec(tmp_path, slow_path))
        abandoned = [
            asyncio.create_task(engine.invoke("iris", "1", slow_request(1.0, float(x)), JSON, 60)) for x in range(8)
        ]
        await asyncio.sleep(0.3)  # one is being predicted, seven wait in the replica's queue
        for task in abandoned:
            task.cancel()
        await asyncio.gather(*abandoned, return_exceptions=True)
        started = time.monotonic()
        result = await engine.invoke("iris", "1", slow_request(0.0, 42.0), JSON, 30)
        elapsed = time.monotonic() - started
        await asyncio.sleep(0.2)
        return elapsed, result, observe(engine, "iris-1-a").in_flight

    elapsed, result, in_flight = run_engine(tmp_path, scenario)

    assert json.loads(result.body) == {"predictions": [42.0]}
    assert elapsed < 2.0, f"waited {elapsed:.1f} s: the abandoned requests were scored first"
    assert in_flight == 0
