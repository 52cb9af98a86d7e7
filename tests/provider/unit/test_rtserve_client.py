"""The REST client: auth, the error envelope, retries and URLs."""

from __future__ import annotations

import threading

import httpx
import pytest

from rtserve.provider.client import ApiError, RtserveClient

pytestmark = pytest.mark.unit


def client_for(handler, retries: int = 3) -> RtserveClient:  # type: ignore[no-untyped-def]
    return RtserveClient(
        "http://h:1/", "tok", transport=httpx.MockTransport(handler), retries=retries, sleep=lambda s: None
    )


def test_requests_carry_the_bearer_token_and_json_body() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={})

    client_for(handler).update_compute_config("iris", "Staging", "Medium", True)
    assert seen[0].headers["authorization"] == "Bearer tok"
    assert seen[0].method == "PUT"
    assert seen[0].url.path == "/api/2.0/preview/mlflow/endpoints-v2/update-compute-config"
    assert b'"desired_workload_config_spec":{"workload_size_id":"Medium","scale_to_zero_enabled":true}' in (
        seen[0].content.replace(b" ", b"")
    )


def test_an_error_envelope_becomes_an_api_error_with_code_and_message() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no such model"})

    with pytest.raises(ApiError) as caught:
        client_for(handler).get_status("nope")
    assert (caught.value.status, caught.value.error_code, caught.value.message) == (
        404,
        "RESOURCE_DOES_NOT_EXIST",
        "no such model",
    )
    assert caught.value.not_found


def test_an_error_without_envelope_keeps_the_status_and_text() -> None:
    with pytest.raises(ApiError) as caught:
        client_for(lambda r: httpx.Response(502, text="Bad gateway"), retries=0).enable("iris")
    assert caught.value.error_code == "HTTP_502"
    assert caught.value.message == "Bad gateway"


def test_temporarily_unavailable_answers_are_retried() -> None:
    answers = iter(
        [
            httpx.Response(503, json={"error_code": "TEMPORARILY_UNAVAILABLE", "message": "busy"}),
            httpx.Response(200, json={"endpoint_status": {"state": "ENDPOINT_STATE_READY"}}),
        ]
    )
    assert client_for(lambda r: next(answers)).get_status("iris")["state"] == "ENDPOINT_STATE_READY"


def test_an_unreachable_backend_is_temporarily_unavailable_after_the_retries() -> None:
    attempts = []

    def handler(request: httpx.Request) -> httpx.Response:
        attempts.append(1)
        raise httpx.ConnectError("connection refused")

    with pytest.raises(ApiError) as caught:
        client_for(handler, retries=2).get_status("iris")
    assert caught.value.error_code == "TEMPORARILY_UNAVAILABLE"
    assert "cannot reach http://h:1" in caught.value.message
    assert len(attempts) == 3


def test_urls_quote_the_model_name() -> None:
    client = client_for(lambda r: httpx.Response(200))
    assert client.stage_url("my model", "Staging") == "http://h:1/model-endpoint/my%20model/Staging/invocations"
    assert client.version_url("m/x", "2") == "http://h:1/model/m%2Fx/2/invocations"


def test_search_follows_pagination() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("page_token") == "p2":
            return httpx.Response(200, json={"model_versions": [{"version": "2"}]})
        assert request.url.params["filter"] == "name='iris'"
        return httpx.Response(200, json={"model_versions": [{"version": "1"}], "next_page_token": "p2"})

    assert [v["version"] for v in client_for(handler).search_model_versions("iris")] == ["1", "2"]


def test_one_client_serves_many_threads() -> None:
    client = client_for(
        lambda r: httpx.Response(200, json={"aliases": [{"alias": "Staging", "endpoint_version_name": "2"}]})
    )
    results: list[dict] = []
    threads = [threading.Thread(target=lambda: results.append(client.list_version_aliases("iris"))) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [{"Staging": "2"}] * 10
