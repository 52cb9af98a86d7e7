"""The framed protocol: WorkerClient against a real ReplicaServer (in this process) and against bad peers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pytest

from rtserve.server.engines.local.client import WorkerClient
from rtserve.server.worker.protocol import (
    MAX_HEADER_BYTES,
    PREFIX,
    ProtocolError,
    encode_frame,
    read_frame,
)
from rtserve.server.worker.server import ReplicaServer
from tests.worker.models import iris_frame, save_slow_model

pytestmark = pytest.mark.unit

JSON = "application/json"


@pytest.fixture(scope="module")
def iris(iris_path: Path) -> Any:
    return mlflow.pyfunc.load_model(str(iris_path))


@pytest.fixture(scope="module")
def slow_model(model_dir: Path) -> Any:
    return mlflow.pyfunc.load_model(str(save_slow_model(model_dir / "slow-protocol")))


@pytest.fixture
def socket_path(tmp_path: Path) -> Iterator[str]:
    yield str(tmp_path / "w.sock")


def run(scenario: Awaitable[Any]) -> Any:
    return asyncio.run(asyncio.wait_for(scenario, 30))  # type: ignore[arg-type]


async def serving(model: Any, socket_path: str, body: Callable[[ReplicaServer, WorkerClient], Awaitable[Any]]) -> Any:
    server = ReplicaServer(model)
    await server.start(socket_path)
    client = WorkerClient(socket_path)
    await client.connect()
    try:
        return await body(server, client)
    finally:
        await client.close()
        server.request_stop()
        await server.serve_until_stopped()


def iris_request(row: int) -> bytes:
    features, _ = iris_frame()
    return json.dumps({"dataframe_records": features.iloc[[row]].to_dict(orient="records")}).encode()


def slow_request(seconds: float, x: float = 1.0) -> bytes:
    return json.dumps({"dataframe_records": [{"x": x}], "params": {"seconds": seconds}}).encode()


def test_a_frame_reads_back_as_written():
    async def scenario() -> tuple[dict[str, Any], bytes]:
        reader = asyncio.StreamReader()
        reader.feed_data(encode_frame({"id": 7, "op": "invoke"}, b"\x00body\xff"))
        return await read_frame(reader)

    assert run(scenario()) == ({"id": 7, "op": "invoke"}, b"\x00body\xff")


@pytest.mark.parametrize(
    "garbage",
    [
        PREFIX.pack(MAX_HEADER_BYTES + 1, 0),
        PREFIX.pack(5, 0) + b"nope!",
        PREFIX.pack(2, 0) + b"[]",
    ],
    ids=["oversized header", "header not json", "header not an object"],
)
def test_garbage_is_a_protocol_error(garbage: bytes):
    async def scenario() -> None:
        reader = asyncio.StreamReader()
        reader.feed_data(garbage)
        await read_frame(reader)

    with pytest.raises(ProtocolError):
        run(scenario())


def test_invoke_returns_the_models_predictions_and_ping_succeeds(iris: Any, socket_path: str):
    async def body(server: ReplicaServer, client: WorkerClient) -> tuple[Any, bool]:
        return await client.invoke(iris_request(0), JSON, 5), await client.ping(5)

    result, pong = run(serving(iris, socket_path, body))

    assert result.status == 200 and result.content_type == JSON
    assert json.loads(result.body) == {"predictions": [0]}
    assert pong is True


def test_concurrent_requests_on_one_connection_get_their_own_answers(iris: Any, socket_path: str):
    rows = [0, 60, 120] * 10
    features, _ = iris_frame()
    expected = [[int(p)] for p in iris.predict(features.iloc[rows])]

    async def body(server: ReplicaServer, client: WorkerClient) -> list[Any]:
        results = await asyncio.gather(*(client.invoke(iris_request(row), JSON, 10) for row in rows))
        return [json.loads(result.body)["predictions"] for result in results]

    assert run(serving(iris, socket_path, body)) == expected


def test_errors_come_back_as_results_not_exceptions(iris: Any, socket_path: str):
    async def body(server: ReplicaServer, client: WorkerClient) -> Any:
        return await client.invoke(b"{nope", JSON, 5)

    result = run(serving(iris, socket_path, body))

    assert result.status == 400
    assert json.loads(result.body)["error_code"] == "BAD_REQUEST"


def test_pings_are_answered_while_a_prediction_runs(slow_model: Any, socket_path: str):
    async def body(server: ReplicaServer, client: WorkerClient) -> bool:
        slow = asyncio.create_task(client.invoke(slow_request(1.0), JSON, 5))
        await asyncio.sleep(0.1)
        pong = await client.ping(0.3)
        await slow
        return pong

    assert run(serving(slow_model, socket_path, body)) is True


def test_a_request_that_waited_past_its_timeout_is_not_scored(iris: Any, socket_path: str):
    readings = iter([0.0, 100.0])  # received at 0; picked from the queue at 100, past its 5 s timeout

    async def scenario() -> Any:
        server = ReplicaServer(iris, clock=lambda: next(readings))
        await server.start(socket_path)
        client = WorkerClient(socket_path)
        await client.connect()
        try:
            return await client.invoke(iris_request(0), JSON, 5)
        finally:
            await client.close()
            server.request_stop()
            await server.serve_until_stopped()

    result = run(scenario())

    assert result.status == 504
    assert json.loads(result.body)["error_code"] == "DEADLINE_EXCEEDED"


def test_a_stopping_server_answers_what_it_received_then_closes(slow_model: Any, socket_path: str):
    async def body(server: ReplicaServer, client: WorkerClient) -> tuple[list[Any], bool]:
        requests = [asyncio.create_task(client.invoke(slow_request(0.2, x), JSON, 5)) for x in (1.0, 2.0, 3.0)]
        await asyncio.sleep(0.05)
        server.request_stop()
        await server.serve_until_stopped()
        results = await asyncio.gather(*requests)
        await asyncio.wait_for(client.wait_closed(), 2)
        return [json.loads(result.body)["predictions"] for result in results], client.connected

    answers, connected = run(serving(slow_model, socket_path, body))

    assert answers == [[1.0], [2.0], [3.0]]
    assert connected is False


def test_an_unknown_op_is_answered_with_an_error_frame(iris: Any, socket_path: str):
    async def scenario() -> dict[str, Any]:
        server = ReplicaServer(iris)
        await server.start(socket_path)
        reader, writer = await asyncio.open_unix_connection(socket_path)
        writer.write(encode_frame({"id": 1, "op": "dance"}))
        header, _ = await read_frame(reader)
        writer.close()
        server.request_stop()
        await server.serve_until_stopped()
        return header

    assert run(scenario()) == {"op": "error", "id": 1, "message": "unknown op 'dance'"}


async def with_peer(
    socket_path: str,
    on_frame: Callable[[asyncio.StreamWriter], None],
    body: Callable[[WorkerClient], Awaitable[Any]],
) -> Any:
    """A fake replica that reads one frame, then does `on_frame(writer)`."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await read_frame(reader)
            on_frame(writer)
            await reader.read()  # hold the connection until the client closes it
        except (asyncio.IncompleteReadError, ConnectionError):
            pass

    server = await asyncio.start_unix_server(handle, path=socket_path)
    client = WorkerClient(socket_path)
    await client.connect()
    try:
        return await body(client)
    finally:
        await client.close()
        server.close()


def test_a_peer_that_dies_mid_request_fails_it_and_later_ones_with_connection_error(socket_path: str):
    async def body(client: WorkerClient) -> list[str]:
        outcomes = []
        for _ in range(2):
            try:
                await client.invoke(b"{}", JSON, 5)
            except ConnectionError:
                outcomes.append("ConnectionError")
        outcomes.append(f"ping={await client.ping(1)}")
        return outcomes

    outcomes = run(with_peer(socket_path, lambda writer: writer.close(), body))

    assert outcomes == ["ConnectionError", "ConnectionError", "ping=False"]


def test_a_peer_that_never_answers_times_out(socket_path: str):
    async def body(client: WorkerClient) -> tuple[str, bool]:
        try:
            await client.invoke(b"{}", JSON, 0.2)
            outcome = "answered"
        except TimeoutError:
            outcome = "TimeoutError"
        return outcome, await client.ping(0.2)

    assert run(with_peer(socket_path, lambda writer: None, body)) == ("TimeoutError", False)


def test_connecting_to_a_socket_nobody_listens_on_is_a_connection_error(socket_path: str):
    with pytest.raises(ConnectionError):
        run(WorkerClient(socket_path).connect())


# -- over TCP, as a Ray replica actor serves: the secret first ------------------------------------------


async def serving_tcp(model: Any, body: Callable[[ReplicaServer, tuple[str, int]], Awaitable[Any]]) -> Any:
    server = ReplicaServer(model)
    port = await server.listen("127.0.0.1", "the-replicas-secret")
    try:
        return await body(server, ("127.0.0.1", port))
    finally:
        server.request_stop()
        await server.serve_until_stopped()


def test_over_tcp_a_client_with_the_secret_is_served(iris: Any):
    async def body(server: ReplicaServer, address: tuple[str, int]) -> tuple[int, Any]:
        client = WorkerClient(address, "the-replicas-secret")
        await client.connect()
        try:
            result = await client.invoke(iris_request(0), JSON, 5)
        finally:
            await client.close()
        return result.status, json.loads(result.body)

    status, answer = run(serving_tcp(iris, body))

    assert status == 200
    assert answer == {"predictions": [0]}


@pytest.mark.parametrize("secret", [None, "", "the-replicas-secreT", "the-replicas-secret-and-more"])
def test_over_tcp_a_client_without_the_secret_is_refused(iris: Any, secret: str | None):
    async def body(server: ReplicaServer, address: tuple[str, int]) -> int:
        with pytest.raises(ConnectionError, match="refused the connection"):
            await WorkerClient(address, secret).connect()
        return server.in_flight

    assert run(serving_tcp(iris, body)) == 0


def test_over_tcp_a_request_before_the_hello_is_never_scored(iris: Any):
    async def body(server: ReplicaServer, address: tuple[str, int]) -> tuple[bytes, int]:
        reader, writer = await asyncio.open_connection(*address)
        writer.write(encode_frame({"op": "invoke", "id": 1, "content_type": JSON}, iris_request(0)))
        writer.write(encode_frame({"op": "ping", "id": 2}))
        answered = await reader.read()  # the server closes the connection without a word
        writer.close()
        return answered, server.in_flight

    assert run(serving_tcp(iris, body)) == (b"", 0)


def test_over_tcp_a_hello_with_a_body_is_refused_before_the_body_is_read(iris: Any):
    async def body(server: ReplicaServer, address: tuple[str, int]) -> bytes:
        reader, writer = await asyncio.open_connection(*address)
        header = json.dumps({"op": "hello", "secret": "the-replicas-secret"}).encode()
        writer.write(PREFIX.pack(len(header), 512 * 1024 * 1024) + header)  # announces half a gigabyte
        answered = await reader.read()
        writer.close()
        return answered

    assert run(serving_tcp(iris, body)) == b""


def test_over_tcp_the_server_listens_on_a_free_port_of_its_range(iris: Any):
    async def scenario() -> tuple[int, str]:
        taken = ReplicaServer(iris)
        first = await taken.listen("127.0.0.1", "s")
        server = ReplicaServer(iris)
        try:
            port = await server.listen("127.0.0.1", "s", (first, first + 1))
            with pytest.raises(OSError) as full:
                await ReplicaServer(iris).listen("127.0.0.1", "s", (first, first))
            return port - first, str(full.value)
        finally:
            for running in (taken, server):
                running.request_stop()
                await running.serve_until_stopped()

    offset, error = run(scenario())

    assert offset == 1
    assert "in use" in error
