"""An in-memory stand-in for the rtserve backend's REST contract (endpoints-v2, the GA serving-endpoints
API, its permissions API and the registry routes the provider uses). Unit tests mount it as an httpx.MockTransport;
Terraform tests serve it over HTTP.

It is deliberately small: status is READY after `pending_polls` get-status calls, FAILED when
`fail_message` is set, and the alias of a stage is the newest version in it. A serving endpoint's
pending config stays IN_PROGRESS for `rollout_polls` GETs of it, then replaces its config; a served
entity whose (model, version) is in `failing_versions` is DEPLOYMENT_FAILED with that message.
A serving endpoint's grants start as CAN_MANAGE for its creator, `admin`; the principals are the
names in `tokens` (each with its own permission, which GET lists as inherited, like the admins group).
The permissions routes apply the backend's own rules (backend/control/endpoint_permissions.py, pure
functions) to the grants stored here, and the rate limits of a create, PUT .../ai-gateway and PUT
.../rate-limits are parsed by backend/control/rate_limits.py, so the fake answers and refuses exactly
as the backend does. Rate limits are stored, not enforced.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import httpx
from rtserve.server.auth import Permission
from rtserve.server.control import endpoint_permissions as acl_rules
from rtserve.server.control import rate_limits as limit_rules
from rtserve.server.control.endpoint_permissions import Grant
from rtserve.server.errors import ApiError as BackendApiError

PREVIEW = "/api/2.0/preview/mlflow/endpoints-v2"
STAGES = ("None", "Staging", "Production", "Archived")
SERVING = ("Staging", "Production")
SIZES = ("Small", "Medium", "Large")
SERVING_ENDPOINTS = "/api/2.0/serving-endpoints"
PERMISSIONS = "/api/2.0/permissions/serving-endpoints/"
ENDPOINT_NAME = re.compile(r"^[A-Za-z0-9_-]{1,63}$")
T = TypeVar("T")


class Error(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        self.status, self.code, self.message = status, code, message


def backend_rule(rule: Callable[..., T], *args: Any) -> T:
    """`rule(*args)`, one of the backend's pure functions; its ApiError answered as the backend would."""
    try:
        return rule(*args)
    except BackendApiError as error:
        raise Error(error.status, error.error_code, error.message) from None


@dataclass
class FakeBackend:
    token: str = "test-token"
    models: dict[str, dict[str, str]] = field(default_factory=dict)  # model -> version -> stage
    endpoints: dict[str, dict[str, dict]] = field(default_factory=dict)  # model -> stage -> workload spec
    pending_polls: int = 0
    fail_message: str | None = None
    calls: list[tuple[str, str, dict]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # GA serving endpoints: name -> {"id", "config", "pending", "tags"}; configs as the wire form without state
    serving: dict[str, dict] = field(default_factory=dict)
    rollout_polls: int = 0
    failing_versions: dict[tuple[str, str], str] = field(default_factory=dict)
    # token name -> its own permission: the principals a grant may name
    tokens: dict[str, str] = field(
        default_factory=lambda: {"admin": "ADMIN", "alice": "CAN_VIEW", "bob": "CAN_QUERY", "ci": "CAN_MANAGE"}
    )

    def add_model(self, name: str, versions: int = 2) -> None:
        self.models[name] = {str(v): "None" for v in range(1, versions + 1)}

    # -- the contract ----------------------------------------------------------------------------
    def handle(self, method: str, path: str, params: dict, headers: dict[str, str]) -> tuple[int, dict]:
        with self.lock:
            self.calls.append((method, path, params))
            if headers.get("authorization") != f"Bearer {self.token}":
                return 401, {"error_code": "UNAUTHENTICATED", "message": "Missing or invalid token."}
            try:
                return 200, self._route(method, path, params)
            except Error as error:
                return error.status, {"error_code": error.code, "message": error.message}

    def _route(self, method: str, path: str, p: dict) -> dict:
        routes = {
            ("POST", f"{PREVIEW}/enable"): self._enable,
            ("POST", f"{PREVIEW}/disable"): self._disable,
            ("PUT", f"{PREVIEW}/update-compute-config"): self._update,
            ("GET", f"{PREVIEW}/get-status"): self._status,
            ("GET", f"{PREVIEW}/list-versions"): self._versions,
            ("GET", f"{PREVIEW}/list-version-aliases"): self._aliases,
            ("GET", "/api/2.0/mlflow/registered-models/get"): self._get_model,
            ("GET", "/api/2.0/mlflow/model-versions/search"): self._search,
            ("GET", "/api/2.0/mlflow/model-versions/get"): self._get_version,
            ("POST", "/api/2.0/mlflow/databricks/model-versions/transition-stage"): self._transition,
        }
        handler = routes.get((method, path))
        if handler is None and path.startswith(PERMISSIONS):
            return self._permissions(method, path.removeprefix(PERMISSIONS), p)
        if handler is None and path.startswith(SERVING_ENDPOINTS):
            return self._serving_route(method, path.removeprefix(SERVING_ENDPOINTS), p)
        if handler is None:
            raise Error(404, "ENDPOINT_NOT_FOUND", f"No route {method} {path}")
        return handler(p)

    def _model(self, name: str) -> dict[str, str]:
        if name not in self.models:
            raise Error(404, "RESOURCE_DOES_NOT_EXIST", f"Registered Model with name={name} not found")
        return self.models[name]

    def _endpoint(self, name: str) -> dict[str, dict]:
        if name not in self.endpoints:
            raise Error(404, "RESOURCE_DOES_NOT_EXIST", f"Serving is not enabled for registered model '{name}'.")
        return self.endpoints[name]

    def _enable(self, p: dict) -> dict:
        name = p["registered_model_name"]
        self._model(name)
        self.endpoints.setdefault(
            name, {s: {"workload_size_id": "Small", "scale_to_zero_enabled": False} for s in SERVING}
        )
        return {}

    def _disable(self, p: dict) -> dict:
        self._endpoint(p["registered_model_name"])
        del self.endpoints[p["registered_model_name"]]
        return {}

    def _update(self, p: dict) -> dict:
        endpoint = self._endpoint(p["registered_model_name"])
        spec = p.get("desired_workload_config_spec") or {}
        if p.get("stage") not in SERVING:
            raise Error(
                400, "INVALID_PARAMETER_VALUE", f"stage must be one of Staging, Production; got {p.get('stage')!r}."
            )
        if spec.get("workload_size_id") not in SIZES:
            raise Error(
                400,
                "INVALID_PARAMETER_VALUE",
                f"workload_size_id must be one of Small, Medium, Large; got {spec.get('workload_size_id')!r}.",
            )
        endpoint[p["stage"]] = {
            "workload_size_id": spec["workload_size_id"],
            "scale_to_zero_enabled": bool(spec.get("scale_to_zero_enabled", False)),
        }
        return {}

    def _state(self) -> tuple[str, str]:
        if self.fail_message:
            return "ENDPOINT_STATE_FAILED", self.fail_message
        if self.pending_polls > 0:
            self.pending_polls -= 1
            return "ENDPOINT_STATE_PENDING", "Starting replicas"
        return "ENDPOINT_STATE_READY", "Ready"

    def _status(self, p: dict) -> dict:
        name = p["registered_model_name"]
        endpoint = self._endpoint(name)
        state, message = self._state()
        configs = [
            {"stage": s, "creation_timestamp": 1, "user_id": "admin", "workload_spec": dict(spec)}
            for s, spec in endpoint.items()
        ]
        return {
            "endpoint_status": {
                "registered_model_name": name,
                "state": state,
                "state_message": message,
                "compute_config": configs,
            }
        }

    def _versions(self, p: dict) -> dict:
        name = p["registered_model_name"]
        endpoint = self._endpoint(name)
        statuses = []
        for version, stage in sorted(self.models[name].items(), key=lambda item: int(item[0])):
            if stage in SERVING:
                config = {"stage": stage, "workload_spec": dict(endpoint[stage])}
                ready = {"state": "SERVICE_STATE_READY", "message": "Ready", "config": config}
                statuses.append(
                    {
                        "registered_model_name": name,
                        "endpoint_version_name": version,
                        "service_status": ready,
                        "config_update_status": ready,
                    }
                )
        return {"endpoint_statuses": statuses}

    def _aliases(self, p: dict) -> dict:
        name = p["registered_model_name"]
        self._endpoint(name)
        aliases = []
        for stage in SERVING:
            versions = [v for v, s in self.models[name].items() if s == stage]
            if versions:
                aliases.append({"alias": stage, "endpoint_version_name": max(versions, key=int)})
        return {"aliases": aliases}

    def _mv(self, name: str, version: str) -> dict:
        return {
            "name": name,
            "version": version,
            "current_stage": self.models[name][version],
            "status": "READY",
            "run_id": f"run{version}",
            "source": f"models:/m-{version}",
            "creation_timestamp": int(version),
            "aliases": [],
        }

    def _get_model(self, p: dict) -> dict:
        self._model(p["name"])
        return {"registered_model": {"name": p["name"]}}

    def _search(self, p: dict) -> dict:
        name = p["filter"].split("'")[1]
        return {"model_versions": [self._mv(name, v) for v in self.models.get(name, {})]}

    def _get_version(self, p: dict) -> dict:
        versions = self._model(p["name"])
        if p["version"] not in versions:
            raise Error(
                404, "RESOURCE_DOES_NOT_EXIST", f"Model Version (name={p['name']}, version={p['version']}) not found"
            )
        return {"model_version": self._mv(p["name"], p["version"])}

    def _transition(self, p: dict) -> dict:
        versions = self._model(p["name"])
        stage = next((s for s in STAGES if s.lower() == str(p["stage"]).lower()), None)
        if stage is None:
            raise Error(400, "INVALID_PARAMETER_VALUE", "stage must be one of None, Staging, Production, Archived.")
        if p["version"] not in versions:
            raise Error(
                404, "RESOURCE_DOES_NOT_EXIST", f"Model Version (name={p['name']}, version={p['version']}) not found"
            )
        if p.get("archive_existing_versions") and stage in SERVING:
            for version, current in versions.items():
                if current == stage and version != p["version"]:
                    versions[version] = "Archived"
        versions[p["version"]] = stage
        return {"model_version_databricks": self._mv(p["name"], p["version"])}

    # -- GA serving endpoints --------------------------------------------------------------------
    def _serving_route(self, method: str, rest: str, p: dict) -> dict:
        parts = rest.strip("/").split("/") if rest.strip("/") else []
        if method == "POST" and not parts:
            return self._create_serving(p)
        if len(parts) == 1 and method == "GET":
            return self._serving_detail(parts[0])
        if len(parts) == 1 and method == "DELETE":
            self._serving_endpoint(parts[0])
            del self.serving[parts[0]]
            return {}
        if parts[1:] == ["config"] and method == "PUT":
            return self._update_serving_config(parts[0], p)
        if parts[1:] == ["tags"] and method == "PATCH":
            return self._patch_serving_tags(parts[0], p)
        if parts[1:] == ["ai-gateway"] and method == "PUT":
            return self._set_rate_limits(parts[0], backend_rule(limit_rules.parse_ai_gateway, p))
        if parts[1:] == ["rate-limits"] and method == "PUT":
            legacy = p.get("rate_limits", [])
            return self._set_rate_limits(parts[0], backend_rule(limit_rules.parse_rate_limits, legacy))
        raise Error(404, "ENDPOINT_NOT_FOUND", f"No route {method} {SERVING_ENDPOINTS}{rest}")

    def _serving_endpoint(self, name: str) -> dict:
        if name not in self.serving:
            raise Error(404, "RESOURCE_DOES_NOT_EXIST", f"Serving endpoint '{name}' does not exist.")
        return self.serving[name]

    def _serving_config(self, config: dict, version: int) -> dict:
        entities = config.get("served_entities")
        if not isinstance(entities, list) or not entities:
            raise Error(400, "INVALID_PARAMETER_VALUE", "'config.served_entities' must be a non-empty list.")
        parsed = []
        for entity in entities:
            model, number = entity["entity_name"], str(entity["entity_version"])
            name = entity.get("name", f"{model}-{number}")
            if number not in self.models.get(model, {}):
                raise Error(
                    404,
                    "RESOURCE_DOES_NOT_EXIST",
                    f"Served entity '{name}': version {number} of registered model '{model}' does not exist. "
                    "Register it first, or fix entity_name/entity_version.",
                )
            size = entity.get("workload_size", "Small")
            if size not in SIZES:
                raise Error(
                    400, "INVALID_PARAMETER_VALUE", f"workload_size must be one of Small, Medium, Large; got {size!r}."
                )
            parsed.append(
                {
                    "name": name,
                    "entity_name": model,
                    "entity_version": str(int(number)),
                    "workload_size": size,
                    "scale_to_zero_enabled": bool(entity.get("scale_to_zero_enabled", False)),
                }
            )
        traffic = config.get("traffic_config")
        if traffic is None and len(parsed) > 1:
            raise Error(400, "INVALID_PARAMETER_VALUE", "'config.traffic_config' is required with several entities.")
        routes = (traffic or {}).get("routes") or [{"served_model_name": parsed[0]["name"], "traffic_percentage": 100}]
        if sum(r["traffic_percentage"] for r in routes) != 100:
            raise Error(400, "INVALID_PARAMETER_VALUE", "Traffic percentages must sum to 100.")
        return {"config_version": version, "served_entities": parsed, "routes": routes}

    def _create_serving(self, p: dict) -> dict:
        name = p.get("name")
        if not isinstance(name, str) or not ENDPOINT_NAME.match(name):
            raise Error(
                400, "INVALID_PARAMETER_VALUE", f"'name' must be 1 to 63 letters, digits, '-' or '_'; got {name!r}."
            )
        if name in self.serving:
            raise Error(409, "RESOURCE_ALREADY_EXISTS", f"Serving endpoint '{name}' already exists.")
        pending = self._serving_config(p.get("config") or {}, 1)
        tags = sorted(p.get("tags") or [], key=lambda t: t["key"])
        legacy, gateway = p.get("rate_limits"), p.get("ai_gateway")
        if legacy is not None and gateway is not None:
            message = "Give rate limits as 'rate_limits' or as 'ai_gateway.rate_limits', not both."
            raise Error(400, "INVALID_PARAMETER_VALUE", message)
        if legacy is not None:
            limits = backend_rule(limit_rules.parse_rate_limits, legacy)
        else:
            limits = backend_rule(limit_rules.parse_ai_gateway, gateway)
        self.serving[name] = {
            "id": f"id-{name}",
            "config": None,
            "pending": pending,
            "tags": tags,
            "acl": [{"user_name": "admin", "permission_level": "CAN_MANAGE"}],
            "rate_limits": [limit.to_stored() for limit in limits],
        }
        return self._detail(name)

    def _set_rate_limits(self, name: str, limits: tuple[limit_rules.RateLimit, ...]) -> dict:
        endpoint = self._serving_endpoint(name)
        endpoint["rate_limits"] = [limit.to_stored() for limit in limits]
        return {"rate_limits": endpoint["rate_limits"]}

    def _update_serving_config(self, name: str, p: dict) -> dict:
        endpoint = self._serving_endpoint(name)
        if endpoint["pending"] is not None and not self._failed(endpoint["pending"]):
            raise Error(
                409, "RESOURCE_CONFLICT", f"Serving endpoint '{name}' is being updated; wait until NOT_UPDATING."
            )
        latest = max(c["config_version"] for c in (endpoint["config"], endpoint["pending"]) if c is not None)
        endpoint["pending"] = self._serving_config(p, latest + 1)
        return self._detail(name)

    def _patch_serving_tags(self, name: str, p: dict) -> dict:
        endpoint = self._serving_endpoint(name)
        tags = {t["key"]: t for t in endpoint["tags"]}
        tags.update({t["key"]: t for t in p.get("add_tags") or []})
        for key in p.get("delete_tags") or []:
            tags.pop(key, None)
        endpoint["tags"] = sorted(tags.values(), key=lambda t: t["key"])
        return {"tags": endpoint["tags"]}

    def _failed(self, config: dict) -> bool:
        return any((e["entity_name"], e["entity_version"]) in self.failing_versions for e in config["served_entities"])

    def _serving_detail(self, name: str) -> dict:
        endpoint = self._serving_endpoint(name)
        pending = endpoint["pending"]
        if pending is not None and not self._failed(pending):
            if self.rollout_polls > 0:
                self.rollout_polls -= 1
            else:
                endpoint["config"], endpoint["pending"] = pending, None
        return self._detail(name)

    def _detail(self, name: str) -> dict:
        endpoint = self.serving[name]
        config, pending = endpoint["config"], endpoint["pending"]
        if pending is None:
            update = "NOT_UPDATING"
        else:
            update = "UPDATE_FAILED" if self._failed(pending) else "IN_PROGRESS"
        ready = config is not None and not self._failed(config)
        detail = {
            "name": name,
            "id": endpoint["id"],
            "creator": "admin",
            "tags": endpoint["tags"],
            "state": {"ready": "READY" if ready else "NOT_READY", "config_update": update},
            "endpoint_url": f"http://fake/serving-endpoints/{name}/invocations",
        }
        if endpoint["rate_limits"]:
            detail["ai_gateway"] = {"rate_limits": endpoint["rate_limits"]}
        if config is not None:
            detail["config"] = self._wire_config(config, deployed=True)
        if pending is not None:
            detail["pending_config"] = {**self._wire_config(pending, deployed=False), "start_time": 1}
        return detail

    def _wire_config(self, config: dict, deployed: bool) -> dict:
        entities = []
        for entity in config["served_entities"]:
            failure = self.failing_versions.get((entity["entity_name"], entity["entity_version"]))
            if failure is not None:
                state = {"deployment": "DEPLOYMENT_FAILED", "deployment_state_message": failure}
            elif deployed:
                state = {"deployment": "DEPLOYMENT_READY", "deployment_state_message": "Ready"}
            else:
                state = {"deployment": "DEPLOYMENT_CREATING", "deployment_state_message": "Starting replicas"}
            entities.append({**entity, "workload_type": "CPU", "state": state})
        routes = [{**r, "served_entity_name": r["served_model_name"]} for r in config["routes"]]
        return {
            "config_version": config["config_version"],
            "served_entities": entities,
            "traffic_config": {"routes": routes},
        }

    # -- permissions of serving endpoints ---------------------------------------------------------
    def _permissions(self, method: str, endpoint_id: str, p: dict) -> dict:
        """The backend's own rules (parsing, PUT/PATCH, the answer with inherited entries) over stored grants."""
        endpoint = next((e for e in self.serving.values() if e["id"] == endpoint_id), None)
        if endpoint is None:
            raise Error(
                404,
                "RESOURCE_DOES_NOT_EXIST",
                f"Serving endpoint with id '{endpoint_id}' does not exist. "
                "The permissions API takes the endpoint's id, not its name.",
            )
        tokens = {name: Permission[level] for name, level in self.tokens.items()}
        grants = [Grant.from_stored(stored) for stored in endpoint["acl"]]
        if method in ("PUT", "PATCH"):
            changes = backend_rule(acl_rules.parse_access_control_list, p.get("access_control_list", []), set(tokens))
            grants = acl_rules.merge([] if method == "PUT" else grants, changes)
            endpoint["acl"] = [grant.to_stored() for grant in grants]
        elif method != "GET":
            raise Error(404, "ENDPOINT_NOT_FOUND", f"No route {method} {PERMISSIONS}{endpoint_id}")
        return acl_rules.permissions_response(endpoint_id, grants, tokens)

    # -- transports ------------------------------------------------------------------------------
    def transport(self) -> httpx.MockTransport:
        def handler(request: httpx.Request) -> httpx.Response:
            params = {k: v for k, v in request.url.params.items()}
            if request.content:
                params.update(json.loads(request.content))
            status, body = self.handle(request.method, request.url.path, params, dict(request.headers))
            return httpx.Response(status, json=body)

        return httpx.MockTransport(handler)

    @contextmanager
    def serve(self) -> Iterator[str]:
        """Serve over HTTP on a free port; yields the base URL."""
        backend = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                url = urlsplit(self.path)
                params = {k: v[0] for k, v in parse_qs(url.query).items()}
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    params.update(json.loads(self.rfile.read(length)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, body = backend.handle(self.command, url.path, params, headers)
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = _answer  # noqa: N815
            do_DELETE = do_PATCH = _answer  # noqa: N815

            def log_message(self, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()
            server.server_close()
