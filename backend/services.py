"""The long-lived objects the routers use, built once by the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from rtserve.server.auth import TokenVerifier
from rtserve.server.control.controller import Controller
from rtserve.server.control.endpoints import EndpointService
from rtserve.server.control.serving_service import ServingEndpointService
from rtserve.server.engines.base import Engine
from rtserve.server.metrics import Metrics
from rtserve.server.registry import Registry
from rtserve.server.settings import Settings


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
