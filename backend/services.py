"""The long-lived objects the routers use, built once by the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from backend.auth import TokenVerifier
from backend.control.controller import Controller
from backend.control.endpoints import EndpointService
from backend.control.serving_service import ServingEndpointService
from backend.engines.base import Engine
from backend.metrics import Metrics
from backend.registry import Registry
from backend.settings import Settings


@dataclass
class Services:
    settings: Settings
    sessions: sessionmaker[Session]
    verifier: TokenVerifier
    registry: Registry
    engine: Engine
    controller: Controller
    endpoints: EndpointService
    serving: ServingEndpointService
    metrics: Metrics
