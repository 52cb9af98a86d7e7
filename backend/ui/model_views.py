"""What the UI pages show, read from the same services and status objects the API reports.

Functions here only read: the registry (in a thread, it blocks), the store, the controller's
observed state and the engine's replicas. Nothing is invented: a page shows what the status
objects say, PENDING included.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from urllib.parse import quote

from mlflow.entities.model_registry import ModelVersion, RegisteredModel

from rtserve.server.control import logs, stages
from rtserve.server.control.status import model_endpoint as model_status
from rtserve.server.control.workloads import SERVING_STAGES, WORKLOAD_SIZES, replica_range
from rtserve.server.errors import ApiError
from rtserve.server.registry import registry_errors
from rtserve.server.services import Services
from rtserve.server.store import repo
from rtserve.server.store.models import ComputeConfig

MAX_MODELS = 1000


@dataclass
class ModelRow:
    name: str
    description: str
    last_updated: int | None
    stages: dict[str, list[str]]  # stage -> versions, from the registry's latest versions
    serving_state: str | None  # ENDPOINT_STATE_* when serving is enabled


@dataclass
class VersionTab:
    """One endpoint version: its status object plus the labels the Serving tab shows."""

    version: str
    status: dict  # EndpointVersionStatus, as get-version-status returns it
    labels: list[str]  # Staging / Production: the stage URLs answering from this version
    aliases: list[str]  # other routes (registry aliases) answering from it
    stage: str | None

    @property
    def state(self) -> str:
        return self.status["service_status"]["state"]

    @property
    def config_state(self) -> str:
        return self.status["config_update_status"]["state"]


@dataclass
class ServingState:
    model: str
    enabled: bool
    endpoint: dict | None = None  # EndpointStatus
    versions: list[VersionTab] = field(default_factory=list)
    routes: dict[str, str] = field(default_factory=dict)
    configs: list[ComputeConfig] = field(default_factory=list)

    @property
    def busy(self) -> bool:
        """Anything still changing: the page polls faster while true."""
        if not self.enabled or self.endpoint is None:
            return False
        return self.endpoint["state"] == "ENDPOINT_STATE_PENDING" or any(
            v.state == "SERVICE_STATE_PENDING" or v.config_state == "SERVICE_STATE_PENDING" for v in self.versions
        )

    def version(self, name: str | None) -> VersionTab | None:
        return next((v for v in self.versions if v.version == name), None)

    def config(self, stage: str) -> ComputeConfig | None:
        return next((c for c in self.configs if c.stage == stage), None)


# -- registry ----------------------------------------------------------------------------------
def _search_models(services: Services) -> list[RegisteredModel]:
    found: list[RegisteredModel] = []
    token = None
    with registry_errors():
        while len(found) < MAX_MODELS:
            page = services.registry.client.search_registered_models(max_results=200, page_token=token)
            found.extend(page)
            token = page.token
            if not token:
                break
    return found


async def model_rows(services: Services) -> list[ModelRow]:
    models = await asyncio.to_thread(_search_models, services)
    enabled = await asyncio.to_thread(_enabled_models, services)
    rows = []
    for model in sorted(models, key=lambda m: m.name.lower()):
        by_stage: dict[str, list[str]] = {}
        for mv in model.latest_versions or []:
            if mv.current_stage in SERVING_STAGES:
                by_stage.setdefault(mv.current_stage, []).append(str(mv.version))
        state = None
        if model.name in enabled:
            observed, _ = model_status.endpoint_state(services.controller.snapshot, model.name)
            state = model_status.ENDPOINT_STATE[observed]
        rows.append(ModelRow(model.name, model.description or "", model.last_updated_timestamp, by_stage, state))
    return rows


async def registered_model(services: Services, name: str) -> RegisteredModel:
    def get() -> RegisteredModel:
        with registry_errors():
            return services.registry.client.get_registered_model(name)

    try:
        return await asyncio.to_thread(get)
    except ApiError as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise ApiError(
                "RESOURCE_DOES_NOT_EXIST",
                f"There is no registered model named '{name}'. Register it with MLflow first "
                "(log_model(..., registered_model_name=...) or mlflow.register_model).",
            ) from exc
        raise


async def model_versions(services: Services, name: str) -> list[ModelVersion]:
    versions = await asyncio.to_thread(services.registry.model_versions, name)
    return sorted(versions, key=lambda mv: stages.version_number(str(mv.version)), reverse=True)


# -- serving -----------------------------------------------------------------------------------
def _enabled_models(services: Services) -> set[str]:
    with services.sessions() as session:
        return {e.registered_model_name for e in repo.list_model_endpoints(session=session)}


def _compute_configs(services: Services, model: str) -> list[ComputeConfig] | None:
    """The model's compute configs, or None if serving is not enabled for it."""
    with services.sessions() as session:
        if repo.get_model_endpoint(session=session, model_name=model) is None:
            return None
        return repo.compute_configs(session=session, model_name=model)


async def serving_state(services: Services, model: str) -> ServingState:
    configs = await asyncio.to_thread(_compute_configs, services, model)
    if configs is None:
        return ServingState(model, enabled=False)
    controller = services.controller
    routes = controller.snapshot.model_routes(model)
    tabs = []
    for view in model_status.version_views(controller.snapshot, model):
        labels = stages.stage_labels(routes, view.version)
        aliases = sorted(r for r, v in routes.items() if v == view.version and r not in SERVING_STAGES)
        tabs.append(VersionTab(view.version, model_status.version_status(view, configs), labels, aliases, view.stage))
    return ServingState(
        model,
        enabled=True,
        endpoint=model_status.endpoint_status(controller.snapshot, model, configs),
        versions=tabs,
        routes=routes,
        configs=configs,
    )


def model_urls(base_url: str, state: ServingState) -> list[tuple[str, str, str | None]]:
    """(label, URL, version it answers from) for each stage/alias route, then each served version."""
    prefix = f"{base_url.rstrip('/')}/model-endpoint/{quote(state.model, safe='')}"
    ordered = sorted(state.routes.items(), key=lambda item: (item[0] not in SERVING_STAGES, item[0] != "Production"))
    urls: list[tuple[str, str, str | None]] = [
        (route, f"{prefix}/{quote(route, safe='')}/invocations", version) for route, version in ordered
    ]
    urls += [(f"Version {v.version}", f"{prefix}/{v.version}/invocations", v.version) for v in state.versions]
    return urls


def replicas(services: Services, model: str, version: str) -> list[dict]:
    found = [r for r in services.engine.replicas() if r.model_name == model and r.version == version]
    return [
        {
            "replica_id": r.replica_id,
            "state": r.state.value,
            "message": r.message,
            "started_at": r.started_at,
            "in_flight": r.in_flight,
        }
        for r in sorted(found, key=lambda r: r.started_at)
    ]


def log_replicas(services: Services, model: str, version: str) -> list[str]:
    """Replicas with a log file (including stopped ones), newest first, as the log tabs list them."""
    files = logs.replica_log_files(services.settings.data_dir, model, version)
    return [f.stem for f in reversed(files[-10:])]


async def version_logs(services: Services, model: str, version: str, replica_id: str | None) -> str:
    return await asyncio.to_thread(logs.version_logs, services.settings.data_dir, model, version, replica_id)


def workload_sizes(replica_concurrency: int) -> list[dict]:
    sizes = []
    for size in WORKLOAD_SIZES.values():
        low, high = replica_range((size.min_concurrency, size.max_concurrency), False, replica_concurrency)
        sizes.append(
            {
                "key": size.key,
                "concurrency": f"{size.min_concurrency}-{size.max_concurrency}",
                "replicas": f"{low}" if low == high else f"{low}-{high}",
            }
        )
    return sizes


def duration(seconds: float) -> str:
    """30 minutes, 45 seconds, 2 hours: how long, for a sentence."""
    for unit, size in (("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return f"{seconds:g} seconds"
