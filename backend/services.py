"""The long-lived objects the routers use, built once by the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session, sessionmaker
from starlette.requests import HTTPConnection

from rtserve.server.auth import TokenVerifier
from rtserve.server.control.admission import Admission
from rtserve.server.control.controller import Controller
from rtserve.server.control.model_endpoints import ModelEndpointService
from rtserve.server.control.serving_service import ServingEndpointService
from rtserve.server.engines.base import Engine
from rtserve.server.metrics import Metrics
from rtserve.server.registry import Registry
from rtserve.server.secret_store import SecretStore
from rtserve.server.settings import Settings
from rtserve.server.tables.writer import InferenceLog

if TYPE_CHECKING:  # the UI's package imports this module
    from rtserve.server.ui.session import SessionStore


@dataclass
class Services:
    settings: Settings
    sessions: sessionmaker[Session]
    verifier: TokenVerifier
    registry: Registry
    engine: Engine
    controller: Controller
    admission: Admission
    model_endpoints: ModelEndpointService  # the preview API's changes (seed 000)
    serving_endpoints: ServingEndpointService  # the GA API's changes (seed 002)
    metrics: Metrics
    inference_log: InferenceLog  # serving endpoints' requests, logged to their inference tables
    secrets: SecretStore  # rtserve's secret store (the secrets API, `rtserve secrets`)
    ui_sessions: SessionStore  # the UI's sessions: in memory, or in the database several instances share


def services_of(connection: HTTPConnection) -> Services:
    """The app's services, from any request (API route or UI page)."""
    return connection.app.state.services
