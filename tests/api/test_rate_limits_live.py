"""Rate limits of serving endpoints on a live backend: the legacy route, the AI gateway, 429s, per-token limits."""

from __future__ import annotations

import uuid

import httpx
import pytest

from rtserve.server.client import BackendClient
from rtserve.server.demo import request_bodies
from rtserve.server.demo_model import register_demo_model
from rtserve.server.process import BackendProcess
from tests.tokens import create_token

pytestmark = pytest.mark.api
IRIS = request_bodies()["dataframe_split"][1]
MODEL = "iris-limits"
API = "/api/2.0/serving-endpoints"
NAME = "limits-endpoint"


@pytest.fixture(scope="module")
def endpoint(admin: BackendClient, mlflow_client_env: str) -> dict:
    register_demo_model(mlflow_client_env, name=MODEL, versions=1)
    served = {"entity_name": MODEL, "entity_version": "1", "workload_size": "Small", "scale_to_zero_enabled": False}
    admin.call(
        "POST",
        API,
        json={
            "name": NAME,
            "config": {"served_entities": [served]},
            "rate_limits": [{"calls": 3, "key": "endpoint", "renewal_period": "minute"}],
        },
    )
    return admin.wait_serving_settled(NAME, timeout=120)


def score(url: str, token: str) -> httpx.Response:
    return httpx.post(
        f"{url}/serving-endpoints/{NAME}/invocations", json=IRIS, headers={"Authorization": f"Bearer {token}"}
    )


def statuses(url: str, token: str, count: int) -> list[int]:
    return [score(url, token).status_code for _ in range(count)]


def set_gateway(admin: BackendClient, *limits: dict) -> dict:
    return admin.call("PUT", f"{API}/{NAME}/ai-gateway", json={"rate_limits": list(limits)})


def test_a_limit_given_at_creation_answers_429_past_it_with_retry_after(
    backend: BackendProcess, admin: BackendClient, endpoint: dict
):
    assert endpoint["ai_gateway"]["rate_limits"] == [{"calls": 3, "key": "endpoint", "renewal_period": "minute"}]

    answered = statuses(backend.url, backend.admin_token, 3)
    refused = score(backend.url, backend.admin_token)

    assert answered == [200, 200, 200]
    assert refused.status_code == 429 and refused.json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"
    assert "3 calls per minute for the endpoint" in refused.json()["message"]
    assert int(refused.headers["retry-after"]) >= 1
    # The other routes of the endpoint are not limited.
    assert admin.http.get(f"{API}/{NAME}").status_code == 200


def test_per_token_limits_count_each_token_and_one_token_can_be_given_more(
    backend: BackendProcess, admin: BackendClient, endpoint: dict
):
    batch_name = f"batch-{uuid.uuid4().hex[:6]}"
    batch, _ = create_token(backend, "CAN_QUERY", name=batch_name)
    other, _ = create_token(backend, "CAN_QUERY")

    answer = set_gateway(
        admin,
        {"calls": 2, "key": "user", "renewal_period": "minute"},
        {"calls": 5, "key": "service_principal", "principal": batch_name, "renewal_period": "minute"},
    )

    assert [limit["calls"] for limit in answer["rate_limits"]] == [2, 5]
    assert statuses(backend.url, other, 3) == [200, 200, 429]
    assert statuses(backend.url, batch, 6) == [200] * 5 + [429]
    assert statuses(backend.url, backend.admin_token, 3) == [200, 200, 429]


def test_the_legacy_route_replaces_the_limits_and_an_empty_list_removes_them(
    backend: BackendProcess, admin: BackendClient, endpoint: dict
):
    answer = admin.call(
        "PUT", f"{API}/{NAME}/rate-limits", json={"rate_limits": [{"calls": 1, "renewal_period": "minute"}]}
    )

    assert answer == {"rate_limits": [{"calls": 1, "key": "endpoint", "renewal_period": "minute"}]}
    assert statuses(backend.url, backend.admin_token, 2) == [200, 429]

    assert admin.call("PUT", f"{API}/{NAME}/rate-limits", json={"rate_limits": []}) == {"rate_limits": []}
    assert statuses(backend.url, backend.admin_token, 5) == [200] * 5
    assert "ai_gateway" not in admin.call("GET", f"{API}/{NAME}")


@pytest.mark.parametrize(
    ("route", "body", "says"),
    [
        ("ai-gateway", {"rate_limits": [{"calls": 5, "renewal_period": "second"}]}, "must be 'minute'"),
        ("ai-gateway", {"inference_table_config": {"enabled": True}}, "inference_table_config.catalog_name"),
        ("ai-gateway", {"guardrails": {"input": {"pii": {"behavior": "BLOCK"}}}}, "remove guardrails"),
        ("rate-limits", {"rate_limits": [{"calls": 5, "key": "user_group", "renewal_period": "minute"}]}, "no user"),
        ("rate-limits", {"rate_limits": "lots"}, "must be a list"),
    ],
)
def test_a_bad_limit_is_a_400_and_the_limits_stay(
    backend: BackendProcess, admin: BackendClient, endpoint: dict, route: str, body: dict, says: str
):
    set_gateway(admin, {"calls": 1000, "renewal_period": "minute"})

    response = admin.http.put(f"{API}/{NAME}/{route}", json=body)

    assert response.status_code == 400 and says in response.json()["message"]
    assert admin.call("GET", f"{API}/{NAME}")["ai_gateway"]["rate_limits"][0]["calls"] == 1000


def test_changing_limits_needs_manage_on_the_endpoint(backend: BackendProcess, endpoint: dict):
    querier, _ = create_token(backend, "CAN_QUERY")

    response = httpx.put(
        f"{backend.url}{API}/{NAME}/ai-gateway",
        json={"rate_limits": []},
        headers={"Authorization": f"Bearer {querier}"},
    )

    assert response.status_code == 403 and response.json()["error_code"] == "PERMISSION_DENIED"


def test_databricks_sdk_sets_ai_gateway_rate_limits(backend: BackendProcess, admin: BackendClient, endpoint: dict):
    from databricks.sdk import WorkspaceClient
    from databricks.sdk.service.serving import (
        AiGatewayRateLimit,
        AiGatewayRateLimitKey,
        AiGatewayRateLimitRenewalPeriod,
    )

    client = WorkspaceClient(host=backend.url, token=backend.admin_token, auth_type="pat")

    answer = client.serving_endpoints.put_ai_gateway(
        NAME,
        rate_limits=[
            AiGatewayRateLimit(
                calls=2, key=AiGatewayRateLimitKey.USER, renewal_period=AiGatewayRateLimitRenewalPeriod.MINUTE
            )
        ],
    )

    assert answer.rate_limits[0].calls == 2
    assert client.serving_endpoints.get(NAME).ai_gateway.rate_limits[0].key == AiGatewayRateLimitKey.USER
    assert statuses(backend.url, backend.admin_token, 3) == [200, 200, 429]
    set_gateway(admin)  # no limits, for whatever runs next
