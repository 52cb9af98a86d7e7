"""The setup the endpoint benchmarks share: a backend held at one Small replica of the demo iris model."""

from __future__ import annotations

import os
from pathlib import Path

from rtserve.server.client import BackendClient
from rtserve.server.demo_model import register_demo_model
from rtserve.server.process import BackendProcess


def backend_process(work: Path, token: str) -> BackendProcess:
    """A backend (not started) under `work`, whose autoscaler stays at Small's lower bound: one replica."""
    env = {"RTSERVE_UPSCALE_DELAY_SECONDS": "1000000"}
    return BackendProcess(work / "state", admin_token=token, env=env, log_path=work / "backend.log")


def serve_demo_model(backend: BackendProcess, token: str, model: str, endpoint: str) -> BackendClient:
    """Register the demo model as `model` and serve version 1 on `endpoint`, settled; the client stays open."""
    os.environ["MLFLOW_TRACKING_TOKEN"] = token
    register_demo_model(backend.url, name=model, versions=1)
    client = BackendClient(backend.url, token)
    served = {"entity_name": model, "entity_version": "1", "workload_size": "Small", "scale_to_zero_enabled": False}
    client.create_serving_endpoint(endpoint, {"served_entities": [served]})
    client.wait_serving_settled(endpoint, timeout=180)
    return client
