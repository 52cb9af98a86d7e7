"""Adaptive batching: concurrent requests predicted in one call answer exactly what each would alone."""

from __future__ import annotations

import asyncio
import json
import random
import time
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pytest

from rtserve.server.engines.local.client import WorkerClient
from rtserve.server.worker.rowwise import MAX_BATCH_MISFITS, RowwiseScorer, is_row_wise
from rtserve.server.worker.scoring import score
from rtserve.server.worker.server import ReplicaServer
from tests.worker.models import iris_frame
from tests.worker.test_scoring import MALFORMED

pytestmark = pytest.mark.unit

JSON = "application/json"


class CountingModel:
    """A loaded pyfunc model that records the number of rows of every predict call."""

    def __init__(self, model: Any) -> None:
        self._model = model
        self.metadata = model.metadata
        self.calls: list[int] = []

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        self.calls.append(len(data))
        return self._model.predict(data, params=params)


@pytest.fixture(scope="module")
def picky(picky_path: Path) -> Any:
    return mlflow.pyfunc.load_model(str(picky_path))


@pytest.fixture(scope="module")
def total(total_path: Path) -> Any:
    return mlflow.pyfunc.load_model(str(total_path))


@pytest.fixture(scope="module")
def row_frame(row_frame_path: Path) -> Any:
    return mlflow.pyfunc.load_model(str(row_frame_path))


def iris_requests(seed: int, count: int) -> list[tuple[bytes, str]]:
    """`count` iris requests of 1 to 7 rows, in the three DataFrame formats, some with their own index."""
    features, _ = iris_frame()
    generator = random.Random(seed)
    requests = []
    for number in range(count):
        rows = features.iloc[generator.sample(range(len(features)), generator.randint(1, 7))]
        kind = number % 4
        if kind == 0:
            body = {"dataframe_split": json.loads(rows.to_json(orient="split"))}  # keeps the frame's index
        elif kind == 1:
            body = {"dataframe_split": json.loads(rows.to_json(orient="split", index=False))}
        elif kind == 2:
            body = {"dataframe_records": rows.to_dict(orient="records")}
        else:
            requests.append((rows.to_csv(index=False).encode(), "text/csv"))
            continue
        requests.append((json.dumps(body).encode(), JSON))
    return requests


def alone(model: Any, requests: list[tuple[bytes, str | None]]) -> list[tuple[int, bytes]]:
    """What MLflow's complete scoring path answers to each request on its own: the reference."""
    return [(result.status, result.body) for result in (score(body, kind, model) for body, kind in requests)]


def together(scorer: RowwiseScorer, requests: list[tuple[bytes, str | None]]) -> list[tuple[int, bytes]]:
    return [(result.status, result.body) for result in scorer.score_many(requests)]


def test_a_batch_of_requests_with_different_row_counts_answers_each_with_exactly_its_own_rows(iris: Any):
    requests = iris_requests(seed=1, count=24)
    counting = CountingModel(iris)

    answers = together(RowwiseScorer(counting), requests)

    assert answers == alone(iris, requests)  # identical bytes, request by request
    assert len(counting.calls) == 2  # the all-float JSON requests together, the CSV ones together
    assert sum(counting.calls) == sum(len(json.loads(body)["predictions"]) for _, body in answers)


def test_all_float_requests_built_into_one_frame_answer_like_separately_parsed_ones(iris: Any):
    columns = list(iris_frame()[0].columns)
    row, other = [5.1, 3.5, 1.4, 0.2], [6.3, 3.3, 6.0, 2.5]

    def split(data: list[list[Any]], **extra: Any) -> tuple[bytes, str]:
        return json.dumps(
            {"dataframe_split": {"columns": extra.pop("columns", columns), "data": data, **extra}}
        ).encode(), JSON

    def records(data: list[list[Any]], order: list[str] = columns) -> tuple[bytes, str]:
        rows = [{name: values[columns.index(name)] for name in order} for values in data]
        return json.dumps({"dataframe_records": rows}).encode(), JSON

    requests = [
        split([row, other]),
        split([other], index=[7]),
        split([row, row], index=["a", "b"]),
        split([other], index=["c"]),
        records([row, other, row]),
        records([other], order=columns[::-1]),  # another column order: not the same frame
        split([[5, 3, 1, 0]]),  # JSON integers parse as int64 columns: not all-float
        split([[float("nan"), 3.5, 1.4, 0.2]]),  # NaN is a float, but the model refuses it
        split([row], index=[True]),  # bool labels: MLflow's own parsing
        split([row[:3]], columns=columns[:3]),  # a missing column: an error, alone
        split([row + [1.0]], columns=[*columns, "extra"]),  # an extra column: dropped by the signature
        (json.dumps({"dataframe_split": {"columns": columns, "data": [row]}, "other": 1}).encode(), JSON),
        (split([row])[0], "application/json; charset=utf-8"),
    ]
    counting = CountingModel(iris)

    answers = together(RowwiseScorer(counting), requests)

    assert answers == alone(iris, requests)
    assert [status for status, _ in answers].count(400) == 2  # the NaN and the missing column
    # Tried together first: the all-float requests indexed 0..n-1 or by integers (2+1+3+1+1 rows, NaN
    # included, so that call failed and each was predicted alone), and those indexed by strings.
    assert counting.calls[0] == 8 and 3 in counting.calls


def test_a_dataframe_answer_is_split_per_request_like_an_array(row_frame: Any):
    requests = [
        (json.dumps({"dataframe_records": [{"x": float(x)} for x in range(start, start + size)]}).encode(), JSON)
        for start, size in ((0, 1), (10, 3), (20, 2), (30, 5))
    ]
    counting = CountingModel(row_frame)

    answers = together(RowwiseScorer(counting), requests)

    assert answers == alone(row_frame, requests)
    assert counting.calls == [11]
    rows_20_and_21 = [{"x2": 40.0, "label": "row-20"}, {"x2": 42.0, "label": "row-21"}]
    assert json.loads(answers[2][1]) == {"predictions": rows_20_and_21}


def test_requests_are_batched_only_with_requests_carrying_the_same_params(params_model: Any):
    def request(rows: int, multiplier: float | None) -> tuple[bytes, str]:
        body: dict[str, Any] = {"dataframe_records": [{"a": float(n), "b": 1.0} for n in range(rows)]}
        if multiplier is not None:
            body["params"] = {"multiplier": multiplier}
        return json.dumps(body).encode(), JSON

    requests = [request(2, 2.0), request(3, None), request(1, 2.0), request(2, 3.0), request(4, None)]
    counting = CountingModel(params_model)

    answers = together(RowwiseScorer(counting), requests)

    assert answers == alone(params_model, requests)
    assert sorted(counting.calls) == [2, 3, 7]  # multiplier 2.0 (2+1 rows), none (3+4 rows), 3.0 (2 rows)


def test_a_bad_request_in_a_batch_fails_alone_and_its_neighbours_succeed(picky: Any):
    requests = [(json.dumps({"dataframe_records": [{"x": x}]}).encode(), JSON) for x in (1.0, 2.0, -1.0, 4.0)]
    requests.append((json.dumps({"dataframe_records": [{"y": 1.0}]}).encode(), JSON))  # no column x

    answers = together(RowwiseScorer(picky), requests)

    assert answers == alone(picky, requests)
    assert [status for status, _ in answers] == [200, 200, 400, 200, 400]
    assert "negative x is not allowed" in json.loads(answers[2][1])["message"]
    assert json.loads(answers[3][1]) == {"predictions": [8.0]}


@pytest.mark.parametrize("model_fixture", ["iris", "params_model", "tensor_model"])
def test_every_malformed_request_gets_mlflows_own_answer_alone_and_in_a_batch(
    request: pytest.FixtureRequest, model_fixture: str
):
    model = request.getfixturevalue(model_fixture)
    cases = [(kind, body) for name, (fixture, kind, body) in MALFORMED.items() if fixture == model_fixture]
    requests = [(body, kind) for kind, body in cases]
    scorer = RowwiseScorer(model)

    expected = alone(model, requests)

    assert [(r.status, r.body) for r in (scorer.score_one(body, kind) for body, kind in requests)] == expected
    good = iris_requests(seed=2, count=4) if model_fixture == "iris" else []
    assert together(scorer, requests + good) == expected + alone(model, good)


def test_tensor_models_and_type_hint_models_are_not_batched(tensor_model: Any, iris: Any):
    assert is_row_wise(iris)
    assert not is_row_wise(tensor_model)
    assert not ReplicaServer(tensor_model, max_batch_size=16, max_batch_wait_ms=5).batching
    assert ReplicaServer(iris, max_batch_size=16, max_batch_wait_ms=5).batching
    assert not ReplicaServer(iris).batching


def test_a_model_that_is_not_row_wise_answers_like_unbatched_and_batching_turns_off(total: Any):
    scorer = RowwiseScorer(total)
    requests = [(json.dumps({"dataframe_records": [{"x": float(x)}] * 2}).encode(), JSON) for x in range(4)]

    for _ in range(MAX_BATCH_MISFITS):
        assert together(scorer, requests) == alone(total, requests)

    assert scorer.batching is False
    assert together(scorer, requests) == alone(total, requests)


# -- through a real ReplicaServer ---------------------------------------------------------------


async def serve_and_call(model: Any, socket_path: str, calls: Any, **batching: Any) -> Any:
    server = ReplicaServer(model, **batching)
    await server.start(socket_path)
    client = WorkerClient(socket_path)
    await client.connect()
    try:
        return await calls(client)
    finally:
        await client.close()
        server.request_stop()
        await server.serve_until_stopped()


def test_many_concurrent_callers_on_a_batching_replica_each_get_their_own_answer(iris: Any, tmp_path: Path):
    requests = iris_requests(seed=3, count=60)
    counting = CountingModel(iris)

    async def calls(client: WorkerClient) -> list[tuple[int, bytes]]:
        results = await asyncio.gather(*(client.invoke(body, kind, 10) for body, kind in requests))
        return [(result.status, result.body) for result in results]

    answers = asyncio.run(
        serve_and_call(counting, str(tmp_path / "b.sock"), calls, max_batch_size=16, max_batch_wait_ms=5)
    )

    assert answers == alone(iris, requests)
    assert len(counting.calls) < len(requests) / 2  # batched: far fewer predict calls than requests


def test_a_lone_caller_does_not_wait_for_company(iris: Any, tmp_path: Path):
    body, kind = iris_requests(seed=4, count=1)[0]

    async def calls(client: WorkerClient) -> float:
        await client.invoke(body, kind, 10)
        started = time.perf_counter()
        for _ in range(5):
            assert (await client.invoke(body, kind, 10)).status == 200
        return (time.perf_counter() - started) / 5

    per_request = asyncio.run(
        serve_and_call(iris, str(tmp_path / "w.sock"), calls, max_batch_size=16, max_batch_wait_ms=300)
    )

    assert per_request < 0.15  # the 300 ms wait applies only with concurrent callers


def records_request(rows: list[int]) -> tuple[bytes, str]:
    features, _ = iris_frame()
    return json.dumps({"dataframe_records": features.iloc[rows].to_dict(orient="records")}).encode(), JSON


def test_concurrent_callers_wait_up_to_the_batch_wait_for_company(iris: Any, tmp_path: Path):
    requests = [records_request(list(range(start, start + size))) for start, size in ((0, 1), (5, 2), (9, 3))] * 2
    counting = CountingModel(iris)

    async def calls(client: WorkerClient) -> list[tuple[int, bytes]]:
        first = [asyncio.create_task(client.invoke(body, kind, 10)) for body, kind in requests[:3]]
        await asyncio.sleep(0.05)  # well within the wait of the batch the first three started
        rest = [asyncio.create_task(client.invoke(body, kind, 10)) for body, kind in requests[3:]]
        return [(result.status, result.body) for result in await asyncio.gather(*first, *rest)]

    answers = asyncio.run(
        serve_and_call(counting, str(tmp_path / "c.sock"), calls, max_batch_size=16, max_batch_wait_ms=400)
    )

    assert answers == alone(iris, requests)
    assert counting.calls == [12]  # all six requests in one predict call
