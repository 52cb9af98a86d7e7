"""MLflow's own tracking server and registry, embedded in the backend at its base URL.

MLflow reads its store locations from environment variables when its server module is first used,
so `configure` must run before `asgi_app` imports it.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Any

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, MapAdapter, Rule

from rtserve.server.settings import Settings

# Paths the embedded MLflow server answers; everything else belongs to rtserve.
MLFLOW_PREFIXES = (
    "/api/2.0/mlflow/",
    "/api/2.0/mlflow-artifacts/",
    "/api/3.0/mlflow/",
    "/ajax-api/",
    "/get-artifact",
    "/model-versions/get-artifact",
)
RTSERVE_PREFIXES = ("/api/2.0/mlflow/databricks/",)
# MLflow's request messages that only read, by the verb their names start with; it sends some as POST.
READ_REQUESTS = ("Get", "Search", "List", "Download", "BatchGet", "Query", "Calculate")
WRITE_REQUESTS = ("GetOrCreate",)


def is_mlflow_path(path: str) -> bool:
    return path.startswith(MLFLOW_PREFIXES) and not path.startswith(RTSERVE_PREFIXES)


def is_read(method: str, path: str) -> bool:
    """Whether MLflow's route only reads: GET and HEAD, and the POSTs its own route table maps to a read.

    A POST that matches no read route (an unknown path included) counts as a write.
    """
    if method in ("GET", "HEAD"):
        return True
    if method != "POST":
        return False
    try:
        _read_posts().match(path, method="POST")
    except HTTPException:
        return False
    return True


@functools.cache
def _read_posts() -> MapAdapter:
    """MLflow's POST routes whose request message is a read, from MLflow's own table of endpoints."""
    from mlflow.server.handlers import get_endpoints

    def request_kind(request_class: object) -> object:
        return request_class  # get_endpoints passes each route's protobuf request class through this

    rules = [
        Rule(path, methods=["POST"])
        for path, request_class, methods in get_endpoints(get_handler=request_kind)
        if "POST" in methods and _is_read_request(request_class)
    ]
    return Map(rules).bind("rtserve")


def _is_read_request(request_class: object) -> bool:
    name = getattr(request_class, "__name__", "")
    # Handlers that are plain functions (not protobuf messages) are named `_verb_...`: writes unless GET.
    return name.startswith(READ_REQUESTS) and not name.startswith(WRITE_REQUESTS)


def changes_registry(method: str, path: str) -> bool:
    return not is_read(method, path) and ("/model-versions/" in path or "/registered-models/" in path)


def store_uri(settings: Settings) -> str:
    """The embedded registry's SQL store, which the backend's own registry client reads in process."""
    return f"sqlite:///{(settings.data_dir / 'mlflow.db').resolve()}"


def artifacts_root(settings: Settings) -> Path:
    """Where the embedded server keeps the artifacts behind `mlflow-artifacts:/` URIs."""
    return (settings.data_dir / "mlartifacts").resolve()


WEBHOOK_WRITE = re.compile(r"^/(?:api|ajax-api)/2\.0/mlflow/webhooks(?:/[^/]+(?:/test)?)?$")


def is_webhook_write(method: str, path: str) -> bool:
    return method in ("POST", "PATCH") and WEBHOOK_WRITE.match(path) is not None


def webhook_problem(body: Any) -> str | None:
    """What is wrong with a webhook's events, or None.

    MLflow's parser turns an unknown enum name (e.g. a lowercase `model_version`) into the
    unspecified value, which its handler then fails on with a 500; rtserve answers 400 first.
    """
    from mlflow.protos.webhooks_pb2 import WebhookAction, WebhookEntity

    if not isinstance(body, dict):
        return None
    events = body.get("events", [])
    events = ([body["event"]] if isinstance(body.get("event"), dict) else []) + (
        events if isinstance(events, list) else []
    )
    for event in events:
        if not isinstance(event, dict):
            return "Each webhook event must be an object {entity, action}."
        for field, enum in (("entity", WebhookEntity), ("action", WebhookAction)):
            value = event.get(field)
            allowed = [name for name in enum.keys() if not name.endswith("_UNSPECIFIED")]
            if value not in allowed:
                return f"A webhook event's '{field}' must be one of {', '.join(allowed)} (upper case); got {value!r}."
    return None


def configure(settings: Settings) -> None:
    from mlflow.server.constants import (
        ARTIFACT_ROOT_ENV_VAR,
        ARTIFACTS_DESTINATION_ENV_VAR,
        BACKEND_STORE_URI_ENV_VAR,
        REGISTRY_STORE_URI_ENV_VAR,
        SERVE_ARTIFACTS_ENV_VAR,
    )

    store = store_uri(settings)
    os.environ[BACKEND_STORE_URI_ENV_VAR] = store
    os.environ[REGISTRY_STORE_URI_ENV_VAR] = store
    os.environ[SERVE_ARTIFACTS_ENV_VAR] = "true"
    os.environ[ARTIFACT_ROOT_ENV_VAR] = "mlflow-artifacts:/"
    os.environ[ARTIFACTS_DESTINATION_ENV_VAR] = str(artifacts_root(settings))
    # The backend reaches the embedded server by its address, whatever Host header clients use.
    os.environ.setdefault("MLFLOW_SERVER_ALLOWED_HOSTS", "*")


def warm_up() -> None:
    """Create MLflow's tables now rather than on the first client request."""
    from mlflow.server import handlers

    handlers._get_tracking_store()
    handlers._get_model_registry_store()
    _read_posts()


def asgi_app():
    from mlflow.server.fastapi_app import create_fastapi_app

    return create_fastapi_app()
