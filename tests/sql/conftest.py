"""A served model for the SQL tests: label and score per row, refusing negative inputs."""

from __future__ import annotations

import re

import httpx
import pandas as pd
import pytest
from mlflow.models import infer_signature

from rtserve.server.client import BackendClient
from rtserve.server.process import BackendProcess
from tests.registry_helpers import register_code_model

MODEL = "sql-label-score"
ENDPOINT = "sql-label"


@pytest.fixture(scope="session")
def label_endpoint(admin: BackendClient, mlflow_client_env: str) -> str:
    """A serving endpoint of the label-score model (version 1), which is also in Production."""
    frame = pd.DataFrame({"x": [1.0, 12.0]})
    signature = infer_signature(frame, pd.DataFrame({"label": ["low", "high"], "score": [2.0, 24.0]}))
    version = register_code_model(MODEL, "label_score.py", signature)
    served = {"entity_name": MODEL, "entity_version": version, "scale_to_zero_enabled": False}
    admin.create_serving_endpoint(ENDPOINT, {"served_entities": [served]})
    admin.enable(MODEL)
    admin.transition(MODEL, version, "Production")
    admin.wait_serving_settled(ENDPOINT)
    admin.wait_ready(MODEL, [version])
    return ENDPOINT


def requests_served(backend: BackendProcess, endpoint: str) -> int:
    """The endpoint's request count, from its Prometheus metrics (what an operator sees)."""
    text = httpx.get(
        f"{backend.url}/api/2.0/serving-endpoints/{endpoint}/metrics",
        headers={"Authorization": f"Bearer {backend.admin_token}"},
    ).text
    return int(sum(float(value) for value in re.findall(r"^request_count_total\{[^}]*\} (\S+)$", text, re.M)))
