"""Connections that never finish a request head, too many connections, and bytes that are not HTTP.

Each runs against a real `rtserve server` process over real sockets: slow or silent connections are
closed after the header timeout, connections past the cap get 503, and what the HTTP layer refuses
leaves as the Databricks error envelope, like every other error.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from rtserve.server.process import BackendProcess

pytestmark = pytest.mark.api
TOKEN = "rtsv-admin-for-connection-tests"
HEADER_TIMEOUT = 1.5  # seconds; well below uvicorn's 5 s keep-alive timeout, so the two cannot be confused
HEALTH = b"GET /health HTTP/1.1\r\nHost: rtserve\r\n\r\n"


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackendProcess]:
    root = tmp_path_factory.mktemp("connections")
    env = {"RTSERVE_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT)}
    with BackendProcess(root / "data", admin_token=TOKEN, env=env, log_path=root / "backend.log") as process:
        yield process


@pytest.fixture(scope="module")
def capped_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackendProcess]:
    root = tmp_path_factory.mktemp("capped")
    # A long header timeout, so that the connections the test holds open stay open.
    env = {"RTSERVE_MAX_CONNECTIONS": "8", "RTSERVE_HEADER_TIMEOUT_SECONDS": "60"}
    with BackendProcess(root / "data", admin_token=TOKEN, env=env, log_path=root / "backend.log") as process:
        yield process


def connect(backend: BackendProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", backend.port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_until_closed(sock: socket.socket, timeout: float) -> bytes:
    """Everything the server sends until it closes the connection; fails if it is still open after `timeout`."""
    sock.settimeout(timeout)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except TimeoutError:
        pytest.fail(f"the server kept the connection open for {timeout:g} s (received {received[:200]!r})")
    except ConnectionResetError:
        pytest.fail(f"the server reset the connection instead of answering (received {received[:200]!r})")
    return received


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One response with a content-length, leaving the connection usable."""
    sock.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed mid-response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status, headers = parse_head(head)
    while len(body) < int(headers["content-length"]):
        chunk = sock.recv(65536)
        assert chunk, f"connection closed mid-body: {data!r}"
        body += chunk
    return status, headers, body


def parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers


def parse_response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, sep, body = raw.partition(b"\r\n\r\n")
    assert sep, f"not an HTTP response: {raw[:300]!r}"
    status, headers = parse_head(head)
    return status, headers, body


def assert_envelope(
    raw: bytes | tuple[int, dict[str, str], bytes], status: int, error_code: str, *, from_http_layer: bool = True
) -> dict:
    """The response is the Databricks envelope; the HTTP layer's own also carry the id as `x-request-id`."""
    got_status, headers, body = parse_response(raw) if isinstance(raw, bytes) else raw
    assert got_status == status, raw
    assert headers["content-type"] == "application/json", raw
    assert int(headers["content-length"]) == len(body), raw
    payload = json.loads(body)
    assert payload["error_code"] == error_code, payload
    assert payload["message"], payload
    assert payload["details"][0]["@type"] == "type.googleapis.com/google.rpc.RequestInfo", payload
    assert payload["details"][0]["request_id"], payload
    if from_http_layer or "x-request-id" in headers:
        assert payload["details"][0]["request_id"] == headers["x-request-id"], (payload, headers)
    return payload


def test_silent_and_half_sent_connections_are_closed_after_the_header_timeout(backend: BackendProcess):
    idle = [connect(backend) for _ in range(50)]
    partial = [connect(backend) for _ in range(3)]
    partial[0].sendall(b"GET /health HTTP/1.1\r\n")
    partial[1].sendall(b"GET /health HTTP/1.1\r\nHost: rtse")
    partial[2].sendall(b"GET /hea")
    # A keep-alive connection whose second request stalls mid-headers.
    keep_alive = connect(backend)
    keep_alive.sendall(HEALTH)
    assert read_response(keep_alive)[0] == 200
    keep_alive.sendall(b"GET /health HTTP/1.1\r\nHost: rtserve\r\nX-Slow: ")
    started = time.monotonic()

    # Meanwhile the service answers as usual.
    assert httpx.get(f"{backend.url}/health", timeout=5).text == "OK"
    slow_but_in_time = connect(backend)
    for piece in (b"GET /health HTTP/1.1\r\n", b"Host: rtserve\r\n", b"\r\n"):
        slow_but_in_time.sendall(piece)
        time.sleep(HEADER_TIMEOUT / 5)
    assert read_response(slow_but_in_time)[:1] == (200,)
    slow_but_in_time.close()

    deadline = HEADER_TIMEOUT + 3
    for sock in idle:  # nothing of a request arrived: closed without a word
        assert read_until_closed(sock, max(0.1, started + deadline - time.monotonic())) == b""
    for sock in [*partial, keep_alive]:  # part of one arrived: 408 with the envelope, then closed
        raw = read_until_closed(sock, max(0.1, started + deadline - time.monotonic()))
        payload = assert_envelope(raw, 408, "DEADLINE_EXCEEDED")
        assert f"{HEADER_TIMEOUT:g} s" in payload["message"]
    assert time.monotonic() - started >= HEADER_TIMEOUT * 0.8  # not before the timeout either
    for sock in [*idle, *partial, keep_alive]:
        sock.close()
    assert httpx.get(f"{backend.url}/health", timeout=5).text == "OK"


def test_a_request_head_with_invalid_bytes_gets_a_json_400(backend: BackendProcess):
    sock = connect(backend)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: rtserve\r\nBad\x01Header: value\r\n\r\n")
    assert_envelope(read_until_closed(sock, 5), 400, "BAD_REQUEST")
    sock.close()
    sock = connect(backend)
    sock.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http at all\r\n\r\n")  # e.g. TLS to a plain port
    assert_envelope(read_until_closed(sock, 5), 400, "BAD_REQUEST")
    sock.close()


def test_a_websocket_upgrade_is_answered_as_plain_http(backend: BackendProcess):
    sock = connect(backend)
    sock.sendall(
        b"GET /api/2.0/serving-endpoints HTTP/1.1\r\nHost: rtserve\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    # uvicorn's WebSocket layer would answer an empty text/plain 403; as plain HTTP it is an API request.
    assert_envelope(read_response(sock), 401, "UNAUTHENTICATED", from_http_layer=False)
    sock.close()


def test_connections_past_the_cap_get_a_503_envelope(capped_backend: BackendProcess):
    held = []
    try:
        # Hold the cap's worth of connections (the backend's own registry client may hold one or two more).
        held = [connect(capped_backend) for _ in range(8)]
        time.sleep(0.3)  # let the server accept them all
        extra = connect(capped_backend)
        extra.sendall(HEALTH)
        payload = assert_envelope(read_until_closed(extra, 5), 503, "TEMPORARILY_UNAVAILABLE")
        assert "8 open connections" in payload["message"]
        extra.close()
        # An ordinary client, sending its request as usual, reads the 503 too (no connection reset).
        response = httpx.get(f"{capped_backend.url}/health", timeout=5)
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/json"
        assert response.json()["error_code"] == "TEMPORARILY_UNAVAILABLE"
        # A held connection that was let in is served.
        held[0].sendall(HEALTH)
        assert read_response(held[0])[0] == 200
    finally:
        for sock in held:
            sock.close()
    # Once they are gone there is room again.
    deadline = time.monotonic() + 5
    while (status := httpx.get(f"{capped_backend.url}/health", timeout=5).status_code) != 200:
        assert time.monotonic() < deadline, status
        time.sleep(0.1)


def test_an_exception_that_escapes_the_app_gets_a_json_500():
    import uvicorn

    from rtserve.server.http_server import protocol_class
    from rtserve.server.process import free_port

    async def broken_app(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] == "http":
            raise RuntimeError("boom")

    port = free_port()
    config = uvicorn.Config(
        broken_app, port=port, http=protocol_class(5.0, 100), ws="none", lifespan="off", log_level="critical"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        response = httpx.get(f"http://127.0.0.1:{port}/anything", timeout=5)
        assert response.status_code == 500
        assert response.headers["content-type"] == "application/json"
        assert response.json()["error_code"] == "INTERNAL_ERROR"
        assert response.json()["details"][0]["request_id"] == response.headers["x-request-id"]
    finally:
        server.should_exit = True
        thread.join(10)
