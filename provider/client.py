"""A thread-safe client of the rtserve REST API (the endpoints-v2 preview API, the GA serving-endpoints
API, the permissions of serving endpoints and the registry).

Terraform calls the provider from a pool of threads: one `httpx.Client` (whose connection pool is
thread-safe) is shared by every call, and the client keeps no other mutable state.

httpx is imported only when a client is built: Terraform starts the provider three or four times per
command, mostly just for its schema, and importing httpx costs about 0.2 s of each start.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    import httpx

PREVIEW = "/api/2.0/preview/mlflow/endpoints-v2"
REGISTRY = "/api/2.0/mlflow"
SERVING_ENDPOINTS = "/api/2.0/serving-endpoints"
PERMISSIONS = "/api/2.0/permissions/serving-endpoints"
# Statuses the server uses for "try again later"; the request had no effect, so retrying is safe.
RETRY_STATUSES = {429, 502, 503}


class ApiError(Exception):
    """An error answer of the backend, with its Databricks error code."""

    def __init__(self, status: int, error_code: str, message: str, method: str = "", path: str = "") -> None:
        super().__init__(f"{error_code}: {message}")
        self.status = status
        self.error_code = error_code
        self.message = message
        self.method = method
        self.path = path

    @property
    def not_found(self) -> bool:
        return self.status == 404 or self.error_code == "RESOURCE_DOES_NOT_EXIST"


def _quote(segment: str) -> str:
    return quote(segment, safe="")


class RtserveClient:
    """Calls the backend at `host` with a bearer token; every method returns the decoded JSON body."""

    def __init__(
        self,
        host: str,
        token: str | None,
        *,
        timeout: float = 30.0,
        retries: int = 3,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        import httpx

        self.host = host.rstrip("/")
        headers = {"User-Agent": "terraform-provider-rtserve"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(base_url=self.host, headers=headers, timeout=timeout, transport=transport)
        self._retries = retries
        self._sleep = sleep

    def close(self) -> None:
        self._http.close()

    # -- plumbing --------------------------------------------------------------------------------
    def request(self, method: str, path: str, *, params: dict | None = None, json: Any = None) -> dict:
        import httpx

        attempt = 0
        while True:
            try:
                response = self._http.request(method, path, params=params, json=json)
            except httpx.ConnectError as exc:
                # The request never reached the server: safe to retry whatever the method.
                if attempt >= self._retries:
                    raise ApiError(
                        0, "TEMPORARILY_UNAVAILABLE", f"cannot reach {self.host}: {exc}", method, path
                    ) from exc
            except httpx.TimeoutException as exc:
                raise ApiError(0, "DEADLINE_EXCEEDED", f"no answer from {self.host}: {exc}", method, path) from exc
            except httpx.HTTPError as exc:
                raise ApiError(0, "TEMPORARILY_UNAVAILABLE", f"{type(exc).__name__}: {exc}", method, path) from exc
            else:
                if response.status_code not in RETRY_STATUSES or attempt >= self._retries:
                    return self._decode(response, method, path)
            attempt += 1
            self._sleep(0.25 * 2**attempt)

    @staticmethod
    def _decode(response: httpx.Response, method: str, path: str) -> dict:
        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                body = None
            if isinstance(body, dict) and "error_code" in body:
                raise ApiError(
                    response.status_code, str(body["error_code"]), str(body.get("message", "")), method, path
                )
            text = response.text.strip()[:500] or response.reason_phrase
            raise ApiError(response.status_code, f"HTTP_{response.status_code}", text, method, path)
        if not response.content:
            return {}
        try:
            body = response.json()
        except ValueError as exc:
            raise ApiError(response.status_code, "MALFORMED_RESPONSE", f"not JSON: {response.text[:200]}") from exc
        if not isinstance(body, dict):
            raise ApiError(response.status_code, "MALFORMED_RESPONSE", f"expected an object, got {body!r:.200}")
        return body

    # -- endpoints-v2 (preview) ------------------------------------------------------------------
    def enable(self, model: str) -> dict:
        return self.request("POST", f"{PREVIEW}/enable", json={"registered_model_name": model})

    def disable(self, model: str) -> dict:
        return self.request("POST", f"{PREVIEW}/disable", json={"registered_model_name": model})

    def update_compute_config(
        self, model: str, stage: str, workload_size: str, scale_to_zero: bool, placement: dict | None = None
    ) -> dict:
        """`placement` None keeps the stage's placement; {} clears it."""
        spec: dict = {"workload_size_id": workload_size, "scale_to_zero_enabled": scale_to_zero}
        if placement is not None:
            spec["placement"] = placement
        body = {"registered_model_name": model, "stage": stage, "desired_workload_config_spec": spec}
        return self.request("PUT", f"{PREVIEW}/update-compute-config", json=body)

    def get_status(self, model: str) -> dict:
        """The `endpoint_status` object; ApiError(404) when serving is not enabled for the model."""
        body = self.request("GET", f"{PREVIEW}/get-status", params={"registered_model_name": model})
        return body.get("endpoint_status") or {}

    def list_versions(self, model: str) -> list[dict]:
        body = self.request("GET", f"{PREVIEW}/list-versions", params={"registered_model_name": model})
        return list(body.get("endpoint_statuses") or [])

    def list_version_aliases(self, model: str) -> dict[str, str]:
        body = self.request("GET", f"{PREVIEW}/list-version-aliases", params={"registered_model_name": model})
        return {str(a["alias"]): str(a["endpoint_version_name"]) for a in body.get("aliases") or []}

    # -- serving endpoints (GA) ------------------------------------------------------------------
    def create_serving_endpoint(
        self,
        name: str,
        config: dict,
        tags: list[dict[str, str]],
        rate_limits: list[dict] | None = None,
        *,
        description: str | None = None,
        route_optimized: bool = False,
        email_notifications: dict[str, list[str]] | None = None,
        gateway_tables: dict[str, Any] | None = None,
    ) -> dict:
        """The endpoint's detail; its config starts as `pending_config` (config_update IN_PROGRESS). Rate limits
        go in the same request, so the endpoint never serves without them."""
        body: dict[str, Any] = {"name": name, "config": config}
        if description is not None:
            body["description"] = description
        if route_optimized:
            body["route_optimized"] = True
        if tags:
            body["tags"] = tags
        if rate_limits or gateway_tables:
            body["ai_gateway"] = {**({"rate_limits": rate_limits} if rate_limits else {}), **(gateway_tables or {})}
        if email_notifications:
            body["email_notifications"] = email_notifications
        return self.request("POST", SERVING_ENDPOINTS, json=body)

    def get_serving_endpoint(self, name: str) -> dict:
        """The endpoint's detail; ApiError(404 RESOURCE_DOES_NOT_EXIST) for an unknown name."""
        return self.request("GET", f"{SERVING_ENDPOINTS}/{_quote(name)}")

    def update_serving_endpoint_config(self, name: str, config: dict) -> dict:
        """Start a config update; ApiError(409 RESOURCE_CONFLICT) while another one is IN_PROGRESS."""
        return self.request("PUT", f"{SERVING_ENDPOINTS}/{_quote(name)}/config", json=config)

    def patch_serving_endpoint_tags(self, name: str, add: list[dict[str, str]], delete: list[str]) -> list[dict]:
        body = {"add_tags": add, "delete_tags": delete}
        return list(self.request("PATCH", f"{SERVING_ENDPOINTS}/{_quote(name)}/tags", json=body).get("tags") or [])

    def set_serving_endpoint_rate_limits(
        self, name: str, rate_limits: list[dict], gateway_tables: dict[str, Any] | None = None
    ) -> list[dict]:
        """Replace the endpoint's AI gateway: its rate limits (an empty list removes them) and its inference and
        usage tables (absent: off); they apply at once, no config update."""
        body = {"rate_limits": rate_limits, **(gateway_tables or {})}
        answer = self.request("PUT", f"{SERVING_ENDPOINTS}/{_quote(name)}/ai-gateway", json=body)
        return list(answer.get("rate_limits") or [])

    def set_serving_endpoint_notifications(self, name: str, email_notifications: dict[str, list[str]]) -> dict:
        """Replace who is e-mailed when the endpoint's config updates finish (empty: nobody)."""
        body = {"email_notifications": email_notifications}
        return self.request("PATCH", f"{SERVING_ENDPOINTS}/{_quote(name)}/notifications", json=body)

    def delete_serving_endpoint(self, name: str) -> None:
        self.request("DELETE", f"{SERVING_ENDPOINTS}/{_quote(name)}")

    # -- permissions of serving endpoints -------------------------------------------------------
    def get_serving_endpoint_permissions(self, endpoint_id: str) -> dict:
        """`{object_id, object_type, access_control_list}`, inherited entries included; ApiError(404) for an
        unknown id (the API takes the endpoint's id, not its name)."""
        return self.request("GET", f"{PERMISSIONS}/{_quote(endpoint_id)}")

    def set_serving_endpoint_permissions(self, endpoint_id: str, access_control_list: list[dict]) -> dict:
        """Replace the endpoint's own grants with `access_control_list`; answers like the GET."""
        body = {"access_control_list": access_control_list}
        return self.request("PUT", f"{PERMISSIONS}/{_quote(endpoint_id)}", json=body)

    # -- registry --------------------------------------------------------------------------------
    def get_registered_model(self, name: str) -> dict:
        body = self.request("GET", f"{REGISTRY}/registered-models/get", params={"name": name})
        return body.get("registered_model") or {}

    def search_model_versions(self, name: str) -> list[dict]:
        """Every version of `name`, following pagination."""
        escaped = name.replace("'", "\\'")
        versions: list[dict] = []
        token: str | None = None
        while True:
            params: dict[str, Any] = {"filter": f"name='{escaped}'", "max_results": 1000}
            if token:
                params["page_token"] = token
            body = self.request("GET", f"{REGISTRY}/model-versions/search", params=params)
            versions.extend(body.get("model_versions") or [])
            token = body.get("next_page_token")
            if not token:
                return versions

    def get_model_version(self, name: str, version: str) -> dict:
        body = self.request("GET", f"{REGISTRY}/model-versions/get", params={"name": name, "version": version})
        return body.get("model_version") or {}

    def transition_stage(
        self, name: str, version: str, stage: str, *, archive_existing_versions: bool, comment: str | None = None
    ) -> dict:
        body: dict[str, Any] = {
            "name": name,
            "version": version,
            "stage": stage,
            "archive_existing_versions": archive_existing_versions,
        }
        if comment:
            body["comment"] = comment
        answer = self.request("POST", f"{REGISTRY}/databricks/model-versions/transition-stage", json=body)
        return answer.get("model_version_databricks") or {}

    # -- URLs ------------------------------------------------------------------------------------
    def stage_url(self, model: str, stage: str) -> str:
        return f"{self.host}/model-endpoint/{_quote(model)}/{_quote(stage)}/invocations"

    def version_url(self, model: str, version: str) -> str:
        return f"{self.host}/model/{_quote(model)}/{_quote(version)}/invocations"

    def serving_endpoint_url(self, name: str) -> str:
        return f"{self.host}/serving-endpoints/{_quote(name)}/invocations"
