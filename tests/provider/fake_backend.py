"""An in-memory stand-in for the rtserve backend's REST contract (endpoints-v2 and the registry routes the
provider uses). Unit tests mount it as an httpx.MockTransport; Terraform tests serve it over HTTP.

It is deliberately small: status is READY after `pending_polls` get-status calls, FAILED when
`fail_message` is set, and the alias of a stage is the newest version in it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import httpx

PREVIEW = "/api/2.0/preview/mlflow/endpoints-v2"
STAGES = ("None", "Staging", "Production", "Archived")
SERVING = ("Staging", "Production")
SIZES = ("Small", "Medium", "Large")


class Error(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        self.status, self.code, self.message = status, code, message


@dataclass
class FakeBackend:
    token: str = "test-token"
    models: dict[str, dict[str, str]] = field(default_factory=dict)  # model -> version -> stage
    endpoints: dict[str, dict[str, dict]] = field(default_factory=dict)  # model -> stage -> workload spec
    pending_polls: int = 0
    fail_message: str | None = None
    calls: list[tuple[str, str, dict]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

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
