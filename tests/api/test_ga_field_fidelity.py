"""Every field of the Databricks SDK's create request is honoured or refused with a 400 that names it: never
dropped. The cases are checked against the SDK's own dataclasses, so a field the SDK gains fails here until
it is decided."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import pytest

from rtserve.server.client import BackendClient
from rtserve.server.demo_model import register_demo_model
from rtserve.server.process import BackendProcess
from tests.conftest import ADMIN_TOKEN
from tests.ui.helpers import UiClient

pytestmark = pytest.mark.api
MODEL = "iris-fidelity"
API = "/api/2.0/serving-endpoints"
ENTITY = {"entity_name": MODEL, "entity_version": "1"}

# Refused fields: (where in the create body, value). The error must name the field; nothing is created.
REFUSED_ENTITY = {
    "burst_scaling_enabled": True,
    "external_model": {"name": "gpt", "provider": "openai", "task": "llm/v1/chat"},
    "instance_profile_arn": "arn:aws:iam::123:instance-profile/x",
    "min_provisioned_throughput": 100,
    "max_provisioned_throughput": 200,
    "provisioned_model_units": 1,
}
REFUSED_CONFIG: dict[str, Any] = {}
REFUSED_CREATE = {
    "budget_policy_id": "policy-1",
    "telemetry_config": {"enabled": True},
}
REFUSED_GATEWAY = {
    "fallback_config": {"enabled": True},
    "guardrails": {"input": {"pii": {"behavior": "BLOCK"}}},
}
HONOURED_GATEWAY = {"rate_limits", "inference_table_config", "usage_tracking_config"}
# Honoured fields, all sent in one create and read back with GET.
HONOURED_ENTITY = {
    "entity_name",
    "entity_version",
    "name",
    "workload_size",
    "scale_to_zero_enabled",
    "workload_type",
    "min_provisioned_concurrency",
    "max_provisioned_concurrency",
    "environment_vars",
}
HONOURED_CREATE = {
    "name",
    "config",
    "tags",
    "description",
    "route_optimized",
    "rate_limits",
    "ai_gateway",
    "email_notifications",
}
HONOURED_CONFIG = {"name", "served_entities", "served_models", "traffic_config", "auto_capture_config"}


@pytest.fixture(scope="module")
def model(mlflow_client_env: str) -> str:
    register_demo_model(mlflow_client_env, name=MODEL, versions=1)
    return MODEL


def names(cls: type) -> set[str]:
    return {field.name for field in dataclasses.fields(cls)}


def test_every_sdk_field_is_decided():
    from databricks.sdk.service import serving

    create_params = set(inspect.signature(serving.ServingEndpointsAPI.create).parameters) - {"self"}
    assert create_params == HONOURED_CREATE | set(REFUSED_CREATE)
    assert names(serving.EndpointCoreConfigInput) == HONOURED_CONFIG | set(REFUSED_CONFIG)
    assert names(serving.ServedEntityInput) == HONOURED_ENTITY | set(REFUSED_ENTITY)
    legacy = {"model_name", "model_version"} | HONOURED_ENTITY - {"entity_name", "entity_version"}
    assert names(serving.ServedModelInput) == legacy | set(REFUSED_ENTITY) - {"external_model"}
    assert names(serving.AiGatewayConfig) == HONOURED_GATEWAY | set(REFUSED_GATEWAY)


def refused_cases() -> dict[str, tuple[str, dict[str, Any]]]:
    def body(config: dict | None = None, **top: Any) -> dict[str, Any]:
        return {"name": "fidelity-refused", "config": config or {"served_entities": [ENTITY]}, **top}

    cases = {f"entity.{k}": (k, body({"served_entities": [{**ENTITY, k: v}]})) for k, v in REFUSED_ENTITY.items()}
    legacy = {"model_name": MODEL, "model_version": "1"}
    cases["served_models.burst_scaling_enabled"] = (
        "burst_scaling_enabled",
        body({"served_models": [{**legacy, "burst_scaling_enabled": True}]}),
    )
    cases |= {f"config.{k}": (k, body({"served_entities": [ENTITY], k: v})) for k, v in REFUSED_CONFIG.items()}
    cases |= {f"create.{k}": (k, body(**{k: v})) for k, v in REFUSED_CREATE.items()}
    cases |= {f"ai_gateway.{k}": (k, body(ai_gateway={k: v})) for k, v in REFUSED_GATEWAY.items()}
    cases["unknown entity field"] = ("colour", body({"served_entities": [{**ENTITY, "colour": "red"}]}))
    cases["unknown top-level field"] = ("colour", body(colour="red"))
    cases["unknown route field"] = (
        "weight",
        body(
            {
                "served_entities": [ENTITY],
                "traffic_config": {
                    "routes": [{"served_model_name": f"{MODEL}-1", "traffic_percentage": 100, "weight": 1}]
                },
            }
        ),
    )
    cases["bad e-mail address"] = (
        "on_update_failure",
        body(email_notifications={"on_update_failure": ["ops@example.com", "not an address"]}),
    )
    cases["unknown e-mail notifications field"] = (
        "on_update_pending",
        body(email_notifications={"on_update_pending": ["ops@example.com"]}),
    )
    cases["unknown rate limit field"] = ("burst", body(rate_limits=[{"calls": 5, "burst": 10}]))
    cases["config.name of another endpoint"] = ("config.name", body({"name": "other", "served_entities": [ENTITY]}))
    cases["provisioned with a workload size"] = (
        "workload_size",
        body(
            {
                "served_entities": [
                    {
                        **ENTITY,
                        "workload_size": "Small",
                        "min_provisioned_concurrency": 4,
                        "max_provisioned_concurrency": 8,
                    }
                ]
            }
        ),
    )
    cases["provisioned not a multiple of 4"] = (
        "max_provisioned_concurrency",
        body({"served_entities": [{**ENTITY, "min_provisioned_concurrency": 4, "max_provisioned_concurrency": 6}]}),
    )
    cases["provisioned min above max"] = (
        "provisioned concurrency",
        body({"served_entities": [{**ENTITY, "min_provisioned_concurrency": 8, "max_provisioned_concurrency": 4}]}),
    )
    cases["provisioned without its other bound"] = (
        "max_provisioned_concurrency",
        body({"served_entities": [{**ENTITY, "min_provisioned_concurrency": 4}]}),
    )
    return cases


REFUSED = refused_cases()


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_field_rtserve_does_not_offer_is_refused_by_name(admin: BackendClient, model: str, case: str):
    field, body = REFUSED[case]

    response = admin.http.post(API, json=body)

    assert response.status_code == 400, response.text
    assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert field in response.json()["message"]
    assert admin.http.get(f"{API}/fidelity-refused").status_code == 404


def test_every_honoured_field_comes_back(backend: BackendProcess, admin: BackendClient, model: str):
    body = {
        "name": "fidelity",
        "description": "Iris, with every field",
        "route_optimized": True,
        "tags": [{"key": "team", "value": "ml"}],
        "email_notifications": {"on_update_failure": ["ops@example.com"], "on_update_success": ["ml@example.com"]},
        "ai_gateway": {
            "rate_limits": [{"calls": 100, "key": "endpoint", "renewal_period": "minute"}],
            "inference_table_config": {"catalog_name": "main", "schema_name": "serving", "enabled": True},
            "usage_tracking_config": {"enabled": True},
        },
        "config": {
            "name": "fidelity",
            "served_entities": [
                {
                    **ENTITY,
                    "name": "sized",
                    "workload_size": "Medium",
                    "scale_to_zero_enabled": True,
                    "workload_type": "CPU",
                    "environment_policy": "local",  # rtserve's own field (docs/environments.md)
                    "environment_vars": {"LOG_LEVEL": "debug"},
                },
                {
                    **ENTITY,
                    "name": "provisioned",
                    "min_provisioned_concurrency": 4,
                    "max_provisioned_concurrency": 8,
                    "environment_vars": {"LOG_LEVEL": "debug"},
                },
            ],
            "traffic_config": {
                "routes": [
                    {"served_model_name": "sized", "traffic_percentage": 50},
                    {"served_entity_name": "provisioned", "traffic_percentage": 50},
                ]
            },
        },
    }
    try:
        created = admin.http.post(API, json=body)
        assert created.status_code == 200, created.text

        detail = admin.http.get(f"{API}/fidelity").json()

        assert detail["description"] == "Iris, with every field"
        assert detail["route_optimized"] is True
        assert detail["email_notifications"] == body["email_notifications"]
        assert detail["endpoint_url"].endswith("/serving-endpoints/fidelity/invocations")
        assert detail["tags"] == [{"key": "team", "value": "ml"}]
        assert detail["ai_gateway"] == {
            **body["ai_gateway"],
            "inference_table_config": {**body["ai_gateway"]["inference_table_config"], "table_name_prefix": "fidelity"},
        }
        config = detail.get("config") or detail["pending_config"]
        sized, provisioned = config["served_entities"]
        assert {k: sized[k] for k in body["config"]["served_entities"][0]} == body["config"]["served_entities"][0]
        assert provisioned["min_provisioned_concurrency"] == 4 and provisioned["max_provisioned_concurrency"] == 8
        assert "workload_size" not in provisioned
        assert [r["traffic_percentage"] for r in config["traffic_config"]["routes"]] == [50, 50]
        listed = {e["name"]: e for e in admin.http.get(API).json()["endpoints"]}
        assert listed["fidelity"]["description"] == "Iris, with every field"
        ui = UiClient(backend)
        try:
            assert ui.sign_in(ADMIN_TOKEN).status_code == 303
            page = ui.http.get("/ui/serving-endpoints/fidelity")
            assert page.status_code == 200 and "4-8 concurrent requests" in page.text
        finally:
            ui.close()
    finally:
        admin.http.delete(f"{API}/fidelity")


def test_the_legacy_served_models_form_round_trips(admin: BackendClient, model: str):
    body = {
        "name": "fidelity-legacy",
        "config": {
            "served_models": [{"model_name": MODEL, "model_version": "1", "workload_size": "Small"}],
            "auto_capture_config": {"catalog_name": "main", "schema_name": "serving", "table_name_prefix": "legacy"},
        },
    }
    try:
        assert admin.http.post(API, json=body).status_code == 200
        detail = admin.http.get(f"{API}/fidelity-legacy").json()
        served = (detail.get("config") or detail["pending_config"])["served_models"][0]
        assert (served["model_name"], served["model_version"], served["workload_size"]) == (MODEL, "1", "Small")
        capture = (detail.get("config") or detail["pending_config"])["auto_capture_config"]
        assert capture["table_name_prefix"] == "legacy" and capture["enabled"] is True
    finally:
        admin.http.delete(f"{API}/fidelity-legacy")
