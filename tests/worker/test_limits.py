"""Requests wider than a replica accepts are refused before parsing, fast, on every scoring path."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from rtserve.server.engines.local.client import WorkerClient
from rtserve.server.worker import jsonbody, limits
from rtserve.server.worker.scoring import score
from rtserve.server.worker.server import ReplicaServer
from tests.worker.models import iris_frame

pytestmark = pytest.mark.unit

JSON = "application/json"
CSV = "text/csv"
WIDE = 100_000


@pytest.fixture(autouse=True)
def default_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(limits.MAX_INPUT_COLUMNS_ENV, raising=False)


def iris_columns() -> list[str]:
    return list(iris_frame()[0].columns)


def wide_csv(width: int = WIDE, prefix: bytes = b"") -> bytes:
    """One row: the iris columns and `width - 4` extra ones (MLflow would ignore the extra ones)."""
    header = ",".join(iris_columns() + [f"c{i}" for i in range(width - 4)])
    return prefix + (header + "\n" + ",".join(["1.0"] * width) + "\n").encode()


def assert_refused(result: Any, count: str, limit: int = limits.DEFAULT_MAX_INPUT_COLUMNS) -> None:
    assert result.status == 400, result.body
    error = json.loads(result.body)
    assert error["error_code"] == "INVALID_PARAMETER_VALUE"
    assert f"has {count} columns; this endpoint accepts at most {limit} " in error["message"]


def test_a_one_row_csv_with_100k_columns_is_refused_in_well_under_a_second(iris: Any):
    body = wide_csv()

    started = time.perf_counter()
    result = score(body, CSV, iris)
    elapsed = time.perf_counter() - started

    assert_refused(result, str(WIDE))
    assert elapsed < 2.0, f"{elapsed:.2f} s"  # parsing it took MLflow 8 to 22 s


def test_a_wide_parquet_body_is_refused_from_its_footer(iris: Any):
    import io

    import pandas as pd

    frame = pd.DataFrame({name: [1.0] for name in iris_columns() + [f"c{i}" for i in range(1996)]})
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    assert_refused(score(buffer.getvalue(), "application/vnd.apache.parquet", iris), "2000")
    narrow = io.BytesIO()
    iris_frame()[0].to_parquet(narrow)
    assert score(narrow.getvalue(), "application/vnd.apache.parquet", iris).status == 200


@pytest.mark.parametrize("batching", [{}, {"max_batch_size": 16, "max_batch_wait_ms": 50}])
def test_the_replica_refuses_it_on_the_row_wise_path_and_still_answers_its_neighbours(
    iris: Any, tmp_path: Path, batching: dict[str, Any]
):
    normal = json.dumps({"dataframe_split": {"columns": iris_columns(), "data": [[5.1, 3.5, 1.4, 0.2]]}}).encode()
    wide_json = json.dumps({"dataframe_split": {"columns": [f"c{i}" for i in range(WIDE)], "data": []}}).encode()
    server = ReplicaServer(iris, **batching)

    async def run() -> tuple[list[Any], float]:
        await server.start(str(tmp_path / "r.sock"))
        client = WorkerClient(str(tmp_path / "r.sock"))
        await client.connect()
        try:
            started = time.perf_counter()
            answers = await asyncio.gather(
                client.invoke(wide_csv(), CSV, 30), client.invoke(normal, JSON, 30), client.invoke(wide_json, JSON, 30)
            )
            return answers, time.perf_counter() - started
        finally:
            await client.close()
            server.request_stop()
            await server.serve_until_stopped()

    (wide, ok, wide_split), elapsed = asyncio.run(run())

    assert_refused(wide, str(WIDE))
    assert_refused(wide_split, str(WIDE))
    assert ok.status == 200 and json.loads(ok.body) == {"predictions": [0]}
    assert elapsed < 1.0, f"{elapsed:.2f} s"


def wide_json_bodies(width: int) -> dict[str, bytes]:
    names = [f"c{i}" for i in range(width)]
    one_key_each = [{name: 1.0} for name in names]  # pandas makes a column of every key it sees
    return {
        "split columns": {"dataframe_split": {"columns": names, "data": [[1.0] * width]}},
        "split without columns": {"dataframe_split": {"data": [[1.0] * width]}},
        "records": {"dataframe_records": [dict.fromkeys(names, 1.0)]},
        "records with new keys in later records": {"dataframe_records": [{"c0": 1.0}, *one_key_each]},
        "records as lists": {"dataframe_records": [[1.0] * width]},
        "inputs dict": {"inputs": dict.fromkeys(names, [1.0])},
        "instances dict": {"instances": dict.fromkeys(names, [1.0])},
        "instances records": {"instances": one_key_each},
    }


@pytest.mark.parametrize("case", list(wide_json_bodies(1)))
def test_every_json_dataframe_form_is_counted(iris: Any, case: str):
    body = json.dumps(wide_json_bodies(5000)[case]).encode()

    started = time.perf_counter()
    alone = score(body, JSON, iris)
    through_the_replica = ReplicaServer(iris, max_batch_size=8)._score_batch([(body, JSON, None)])[0]
    elapsed = time.perf_counter() - started

    # A union of keys is counted only until it passes the limit.
    count = "at least 1025" if "new keys" in case or "instances records" in case else "5000"
    assert_refused(alone, count)
    assert_refused(through_the_replica, count)
    assert elapsed < 1.0


@pytest.mark.parametrize(
    ("prefix", "count"),
    [(b"\xef\xbb\xbf", WIDE), (b"\n\n", WIDE), (b"  \r\n\r\n", WIDE), (b'"a quoted\nnewline",', WIDE + 1)],
    ids=["byte order mark", "blank lines", "whitespace lines", "quoted newline in the header"],
)
def test_the_csv_header_is_found_where_pandas_finds_it(iris: Any, prefix: bytes, count: int):
    result = ReplicaServer(iris)._score_batch([(wide_csv(prefix=prefix), CSV, None)])[0]

    assert_refused(result, str(count))


def test_the_limit_is_a_setting_read_from_the_environment_and_never_falls_below_the_signature(
    iris: Any, monkeypatch: pytest.MonkeyPatch
):
    five = wide_csv(width=5)
    assert score(five, CSV, iris).status == 200  # the default, 1024, allows an extra column

    assert limits.column_limit(iris.metadata.get_input_schema(), 2) == 4  # the signature's 4 columns
    assert score(wide_csv(width=4), CSV, iris, max_input_columns=2).status == 200
    assert_refused(score(five, CSV, iris, max_input_columns=2), "5", limit=4)

    assert score(wide_csv(width=2000), CSV, iris, max_input_columns=2 * WIDE).status == 200

    # The entry points (the local engine, `python -m rtserve.server.worker`) read it from the environment.
    monkeypatch.setenv(limits.MAX_INPUT_COLUMNS_ENV, "2")
    assert limits.max_input_columns() == 2
    monkeypatch.setenv(limits.MAX_INPUT_COLUMNS_ENV, "many")
    assert limits.max_input_columns() == limits.DEFAULT_MAX_INPUT_COLUMNS


def test_small_requests_are_not_inspected(iris: Any, monkeypatch: pytest.MonkeyPatch):
    def fail(*args: Any) -> None:
        raise AssertionError("a small body was inspected")

    monkeypatch.setattr(limits, "_csv_header_width", fail)
    monkeypatch.setattr(limits, "_json_width", fail)
    row = [5.1, 3.5, 1.4, 0.2]
    split = json.dumps({"dataframe_split": {"columns": iris_columns(), "data": [row] * 10}}).encode()

    server = ReplicaServer(iris, max_batch_size=4)
    answers = server._score_batch([(split, JSON, None), (wide_csv(width=4), CSV, None)])

    assert [answer.status for answer in answers] == [200, 200]


def test_a_large_body_counted_for_its_columns_is_decoded_once(iris: Any, monkeypatch: pytest.MonkeyPatch):
    decoded: list[bytes] = []
    loads = jsonbody.loads

    def counting(body: bytes) -> Any:
        decoded.append(body)
        return loads(body)

    monkeypatch.setattr(jsonbody, "loads", counting)
    rows = [dict(zip(iris_columns(), [5.1, 3.5, 1.4, 0.2], strict=True))] * 2048
    body = json.dumps({"dataframe_records": rows}).encode()
    assert len(body) > limits.DEFAULT_MAX_INPUT_COLUMNS * 2  # long enough to have its columns counted

    server = ReplicaServer(iris, max_batch_size=4)
    alone = server._score_batch([(body, JSON, None)])
    together = server._score_batch([(body, JSON, None), (body, JSON, None)])

    assert [answer.status for answer in alone + together] == [200, 200, 200]
    assert len(json.loads(alone[0].body)["predictions"]) == 2048
    assert together[0].body == together[1].body == alone[0].body
    assert len(decoded) == 3  # once per request: the column count's decoding is the scorer's


def test_tensor_inputs_are_not_columns(tensor_model: Any):
    body = json.dumps({"inputs": [[1.0, 2.0, 3.0]] * 1000}).encode()

    result = ReplicaServer(tensor_model, max_input_columns=2)._score_batch([(body, JSON, None)])[0]

    assert result.status == 200, result.body


@pytest.mark.api
def test_a_replica_process_takes_the_limit_from_the_environment_it_inherits(tmp_path: Path, iris_path: Path):
    socket_path = tmp_path / "env.sock"
    log_path = tmp_path / "env.log"
    environment = {**os.environ, limits.MAX_INPUT_COLUMNS_ENV: "4"}
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
            env=environment,
        )

    async def call() -> tuple[Any, Any]:
        client = WorkerClient(str(socket_path))
        await client.connect()
        try:
            return await client.invoke(wide_csv(width=5), CSV, 30), await client.invoke(wide_csv(width=4), CSV, 30)
        finally:
            await client.close()

    try:
        deadline = time.monotonic() + 60
        while not socket_path.exists() and worker.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert socket_path.exists(), log_path.read_text()
        five, four = asyncio.run(call())
        assert_refused(five, "5", limit=4)
        assert four.status == 200
    finally:
        os.kill(worker.pid, signal.SIGTERM)
        worker.wait(10)
