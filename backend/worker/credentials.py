"""The backend's credentials, which no replica inherits: the fork server drops them before it imports
anything (`preload`), and a replica started in a fresh interpreter drops them itself (`replica`)."""

from __future__ import annotations

import os

# The backend's own credentials and those of the registries it reads; model code gets none of them.
CREDENTIAL_VARIABLES = (
    "RTSERVE_ADMIN_TOKEN",
    "RTSERVE_SMTP_PASSWORD",
    "RTSERVE_TOKEN",
    "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_USERNAME",
    "DATABRICKS_TOKEN",
    "DATABRICKS_CLIENT_SECRET",
)


def drop_credentials(environ: dict[str, str] | os._Environ[str] = os.environ) -> list[str]:
    """Remove the backend's credentials from the environment replicas inherit; returns the names removed.

    Replicas load a local copy of their model and call nothing, so they need none of them. (The
    `rtserve server` command removes RTSERVE_ADMIN_TOKEN from its own environment before the fork
    server starts, so it is not in the fork server's initial environment block either.)
    """
    removed = [name for name in CREDENTIAL_VARIABLES if environ.pop(name, None) is not None]
    return removed
