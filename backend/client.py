"""A small synchronous client of the backend's REST API, used by the CLI, the demo and the tests."""

from __future__ import annotations

import time
from typing import Any

import httpx

PREVIEW = "/api/2.0/preview/mlflow/endpoints-v2"
SERVING = "/api/2.0/serving-endpoints"


class BackendError(Exception):
    def __init__(self, status: int, error_code: str, message: str) -> None:
        super().__init__(f"{status} {error_code}: {message}")
        self.status = status
        self.error_code = error_code
        self.message = message


class BackendClient:
    def __init__(self, host: str, token: str, timeout: float = 60.0) -> None:
        self.host = host.rstrip("/")
        self.http = httpx.Client(base_url=self.host, headers={"Authorization": f"Bearer {token}"}, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def call(self, method: str, path: str, **kwargs: Any) -> dict:
        response = self.http.request(method, path, **kwargs)
        if response.status_code >= 400:
            try:
                body = response.json()
                raise BackendError(response.status_code, body.get("error_code", "?"), body.get("message", ""))
            except ValueError:
                raise BackendError(response.status_code, "?", response.text[:500]) from None
        return response.json() if response.content else {}

    # -- preview API -----------------------------------------------------------------------------
    def enable(self, model: str) -> dict:
        return self.call("POST", f"{PREVIEW}/enable", json={"registered_model_name": model})

    def disable(self, model: str) -> dict:
        return self.call("POST", f"{PREVIEW}/disable", json={"registered_model_name": model})

    def update_compute(self, model: str, stage: str, size: str, scale_to_zero: bool = False, **batching: float) -> dict:
        spec = {"workload_size_id": size, "scale_to_zero_enabled": scale_to_zero, **batching}
        body = {"registered_model_name": model, "stage": stage, "desired_workload_config_spec": spec}
        return self.call("PUT", f"{PREVIEW}/update-compute-config", json=body)

    def status(self, model: str) -> dict:
        return self.call("GET", f"{PREVIEW}/get-status", params={"registered_model_name": model})["endpoint_status"]

    def versions(self, model: str) -> list[dict]:
        return self.call("GET", f"{PREVIEW}/list-versions", params={"registered_model_name": model})[
            "endpoint_statuses"
        ]

    def replicas(self, model: str, version: str) -> list[dict]:
        params = {"registered_model_name": model, "endpoint_version_name": version}
        return self.call("GET", f"{PREVIEW}/get-version-replicas", params=params)["replicas"]

    def events(self, model: str) -> list[dict]:
        return self.call("GET", f"{PREVIEW}/get-event-history", params={"registered_model_name": model})["events"]

    def aliases(self, model: str) -> dict[str, str]:
        body = self.call("GET", f"{PREVIEW}/list-version-aliases", params={"registered_model_name": model})
        return {item["alias"]: item["endpoint_version_name"] for item in body["aliases"]}

    def transition(self, model: str, version: str, stage: str, archive: bool = False, comment: str = "") -> dict:
        body = {"name": model, "version": version, "stage": stage, "archive_existing_versions": archive}
        if comment:
            body["comment"] = comment
        return self.call("POST", "/api/2.0/mlflow/databricks/model-versions/transition-stage", json=body)

    def wait_ready(self, model: str, versions: list[str] | None = None, timeout: float = 120.0) -> dict:
        """Wait until the endpoint is READY and, if given, each version READY with its config applied."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.status(model)
            by_version = {v["endpoint_version_name"]: v for v in self.versions(model)}
            done = status["state"] == "ENDPOINT_STATE_READY" and all(
                v in by_version
                and by_version[v]["service_status"]["state"] == "SERVICE_STATE_READY"
                and by_version[v]["config_update_status"]["state"] == "SERVICE_STATE_READY"
                for v in versions or []
            )
            if done:
                return status
            if status["state"] == "ENDPOINT_STATE_FAILED":
                raise BackendError(200, "ENDPOINT_STATE_FAILED", status["state_message"])
            if time.monotonic() > deadline:
                raise TimeoutError(f"{model} not ready after {timeout:g} s: {status['state_message']}")
            time.sleep(0.2)

    # -- GA API: named serving endpoints -------------------------------------------------------
    def create_serving_endpoint(self, name: str, config: dict, tags: list[dict] | None = None) -> dict:
        return self.call("POST", SERVING, json={"name": name, "config": config, **({"tags": tags} if tags else {})})

    def serving_endpoint(self, name: str) -> dict:
        return self.call("GET", f"{SERVING}/{name}")

    def update_serving_config(self, name: str, config: dict) -> dict:
        return self.call("PUT", f"{SERVING}/{name}/config", json=config)

    def delete_serving_endpoint(self, name: str) -> dict:
        return self.call("DELETE", f"{SERVING}/{name}")

    def wait_serving_settled(self, name: str, timeout: float = 120.0) -> dict:
        """Wait until the endpoint is READY with no config update in progress; fail fast on a failed update."""
        deadline = time.monotonic() + timeout
        while True:
            detail = self.serving_endpoint(name)
            state = detail["state"]
            if state == {"ready": "READY", "config_update": "NOT_UPDATING"}:
                return detail
            if state["config_update"] == "UPDATE_FAILED":
                failed = [
                    f"{e['name']}: {e['state']['deployment_state_message']}"
                    for e in detail["pending_config"]["served_entities"]
                    if e["state"]["deployment"] == "DEPLOYMENT_FAILED"
                ]
                raise BackendError(200, "UPDATE_FAILED", "; ".join(failed))
            if time.monotonic() > deadline:
                raise TimeoutError(f"serving endpoint {name} not settled after {timeout:g} s: {state}")
            time.sleep(0.1)

    def score_serving(self, name: str, body: Any, served_model: str | None = None) -> httpx.Response:
        path = f"/serving-endpoints/{name}" + (f"/served-models/{served_model}" if served_model else "")
        return self.http.post(f"{path}/invocations", json=body)

    # -- scoring ---------------------------------------------------------------------------------
    def score(self, model: str, target: str, body: Any, content_type: str = "application/json") -> httpx.Response:
        content = body if isinstance(body, str | bytes) else httpx.Request("POST", "/", json=body).content
        return self.http.post(
            f"/model-endpoint/{model}/{target}/invocations", content=content, headers={"Content-Type": content_type}
        )
