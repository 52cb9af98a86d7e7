"""MLflow's own tracking server and registry, embedded in the backend at its base URL.

MLflow reads its store locations from environment variables when its server module is first used,
so `configure` must run before `asgi_app` imports it.
"""

from __future__ import annotations

import os

from backend.settings import Settings

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
# Reads that MLflow's REST API sends as POST.
READ_ONLY_POSTS = ("/search", "/get", "/get-by-name", "/get-latest-versions")


def is_mlflow_path(path: str) -> bool:
    return path.startswith(MLFLOW_PREFIXES) and not path.startswith(RTSERVE_PREFIXES)


def is_read(method: str, path: str) -> bool:
    return method in ("GET", "HEAD") or (method == "POST" and path.endswith(READ_ONLY_POSTS))


def changes_registry(method: str, path: str) -> bool:
    return not is_read(method, path) and ("/model-versions/" in path or "/registered-models/" in path)


def configure(settings: Settings) -> None:
    from mlflow.server.constants import (
        ARTIFACT_ROOT_ENV_VAR,
        ARTIFACTS_DESTINATION_ENV_VAR,
        BACKEND_STORE_URI_ENV_VAR,
        REGISTRY_STORE_URI_ENV_VAR,
        SERVE_ARTIFACTS_ENV_VAR,
    )

    store = f"sqlite:///{(settings.data_dir / 'mlflow.db').resolve()}"
    os.environ[BACKEND_STORE_URI_ENV_VAR] = store
    os.environ[REGISTRY_STORE_URI_ENV_VAR] = store
    os.environ[SERVE_ARTIFACTS_ENV_VAR] = "true"
    os.environ[ARTIFACT_ROOT_ENV_VAR] = "mlflow-artifacts:/"
    os.environ[ARTIFACTS_DESTINATION_ENV_VAR] = str((settings.data_dir / "mlartifacts").resolve())
    # The backend reaches the embedded server by its address, whatever Host header clients use.
    os.environ.setdefault("MLFLOW_SERVER_ALLOWED_HOSTS", "*")


def warm_up() -> None:
    """Create MLflow's tables now rather than on the first client request."""
    from mlflow.server import handlers

    handlers._get_tracking_store()
    handlers._get_model_registry_store()


def asgi_app():  # type: ignore[no-untyped-def]
    from mlflow.server.fastapi_app import create_fastapi_app

    return create_fastapi_app()
