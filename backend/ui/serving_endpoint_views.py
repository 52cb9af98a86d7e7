"""What the Serving endpoints pages show: seed 002's named endpoints, as the GA API reports them.

Each page is built from the very object GET /api/2.0/serving-endpoints/{name} returns
(serving_status.endpoint_detail over the same service and the controller's observed versions), so
the UI never says something the API would not. This module only reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from rtserve.server.control.status import serving_endpoint as serving_status
from rtserve.server.errors import ApiError
from rtserve.server.services import Services
from rtserve.server.ui.render import SERVING_ENDPOINTS_PATH, PageError

BACK_TO_LIST = (SERVING_ENDPOINTS_PATH, "Back to the serving endpoints")


@dataclass(frozen=True)
class ServedEntityView:
    name: str
    model: str  # the registered model
    version: str
    workload_size: str
    scale_to_zero: bool
    traffic: int  # percent of the config's requests routed to it
    deployment: str  # DEPLOYMENT_READY | DEPLOYMENT_CREATING | DEPLOYMENT_FAILED
    message: str


@dataclass(frozen=True)
class ConfigView:
    config_version: int
    entities: list[ServedEntityView]
    start_time: int | None = None  # a pending config: when the update started (ms)

    @property
    def heaviest(self) -> ServedEntityView:
        """The served entity that gets the most traffic (the first listed on a tie)."""
        return max(self.entities, key=lambda entity: entity.traffic)

    @property
    def failed(self) -> list[ServedEntityView]:
        return [e for e in self.entities if e.deployment == "DEPLOYMENT_FAILED"]

    @property
    def creating(self) -> bool:
        return any(e.deployment == "DEPLOYMENT_CREATING" for e in self.entities)


def _config_view(config: dict) -> ConfigView:
    shares = {r["served_model_name"]: r["traffic_percentage"] for r in config["traffic_config"]["routes"]}
    entities = [
        ServedEntityView(
            name=e["name"],
            model=e["entity_name"],
            version=e["entity_version"],
            workload_size=_size(e),
            scale_to_zero=e["scale_to_zero_enabled"],
            traffic=shares.get(e["name"], 0),
            deployment=e["state"]["deployment"],
            message=e["state"]["deployment_state_message"] or "",
        )
        for e in config["served_entities"]
    ]
    return ConfigView(config["config_version"], entities, config.get("start_time"))


def _size(entity: dict) -> str:
    """Its workload size, or the provisioned concurrency it has instead."""
    if "workload_size" in entity:
        return entity["workload_size"]
    return f"{entity['min_provisioned_concurrency']}-{entity['max_provisioned_concurrency']} concurrent requests"


@dataclass(frozen=True)
class QueryTarget:
    served: str  # "" for the traffic split, else a served entity's name
    label: str


@dataclass(frozen=True)
class EndpointView:
    detail: dict  # exactly what GET /api/2.0/serving-endpoints/{name} answers
    config: ConfigView | None  # the config serving traffic
    pending: ConfigView | None  # an update being rolled out (or the first config, while it starts)

    @property
    def name(self) -> str:
        return self.detail["name"]

    @property
    def ready(self) -> str:
        return self.detail["state"]["ready"]

    @property
    def config_update(self) -> str:
        return self.detail["state"]["config_update"]

    @property
    def live_config(self) -> ConfigView | None:
        """The config requests go to: the active one, or the first one while it starts."""
        return self.config or self.pending

    @property
    def ready_class(self) -> str:
        """The badge colour of `ready`: NOT_READY is red only when a served entity failed to load."""
        if self.ready == "READY":
            return "ready"
        live = self.live_config
        return "failed" if live is not None and live.failed and not live.creating else "pending"

    @property
    def busy(self) -> bool:
        """Something is changing by itself: the page polls faster while true."""
        configs = [c for c in (self.config, self.pending) if c is not None]
        return self.config_update == "IN_PROGRESS" or any(c.creating for c in configs)

    @property
    def state_message(self) -> str:
        """One sentence on what the endpoint is doing, naming what failed."""
        config, pending = self.config, self.pending
        failures = "; ".join(f"{e.name}: {e.message}" for e in (pending.failed if pending else []))
        if config is None and pending is not None:
            if failures:
                return f"Config version {pending.config_version} cannot start ({failures}). Update the config."
            return (
                f"Creating: config version {pending.config_version} is starting; "
                "requests wait for its served models to be ready."
            )
        assert config is not None  # an endpoint always has a config or a pending config
        if self.config_update == "UPDATE_FAILED" and pending is not None:
            return (
                f"The update to config version {pending.config_version} failed ({failures}). "
                f"Config version {config.config_version} keeps serving; fix the config and update it again."
            )
        if pending is not None:
            return (
                f"Updating to config version {pending.config_version}: traffic stays on config version "
                f"{config.config_version} until every served entity of the new one is ready."
            )
        if self.ready != "READY":
            not_ready = [e for e in config.entities if e.deployment != "DEPLOYMENT_READY"]
            return "Not every served entity is ready: " + "; ".join(f"{e.name}: {e.message}" for e in not_ready)
        return f"Serving config version {config.config_version}."

    @property
    def served_model_urls(self) -> list[tuple[ServedEntityView, str, bool]]:
        """(served entity, its own scoring URL, whether it belongs to the pending config)."""
        base = self.detail["endpoint_url"].removesuffix("/invocations")
        urls: list[tuple[ServedEntityView, str, bool]] = []
        for config, pending in ((self.config, False), (self.pending, True)):
            for entity in config.entities if config else []:
                if not any(entity.name == seen.name for seen, _, _ in urls):
                    urls.append((entity, f"{base}/served-models/{quote(entity.name, safe='')}/invocations", pending))
        return urls

    @property
    def query_targets(self) -> list[QueryTarget]:
        targets = [QueryTarget("", "Endpoint (traffic split)")]
        for entity, _, pending in self.served_model_urls:
            where = ", pending config" if pending else ""
            label = f"Served model {entity.name} ({entity.model} version {entity.version}{where})"
            targets.append(QueryTarget(entity.name, label))
        return targets

    @property
    def targets_key(self) -> str:
        """Changes when the choice of served models does: the live refresh then redraws the dropdown."""
        return ",".join(target.served for target in self.query_targets)

    def entity(self, name: str) -> ServedEntityView | None:
        """A served entity by name, of the config or else of the pending config (as scoring finds it)."""
        for config in (self.config, self.pending):
            found = next((e for e in config.entities if e.name == name), None) if config else None
            if found is not None:
                return found
        return None


def _view(detail: dict) -> EndpointView:
    config, pending = detail.get("config"), detail.get("pending_config")
    return EndpointView(detail, _config_view(config) if config else None, _config_view(pending) if pending else None)


async def endpoint_views(services: Services, base_url: str) -> list[EndpointView]:
    views = services.controller.snapshot.views
    endpoints = sorted(await services.serving_endpoints.list_all(), key=lambda endpoint: endpoint.name.lower())
    return [_view(serving_status.endpoint_detail(endpoint, views, base_url)) for endpoint in endpoints]


async def endpoint_view(services: Services, name: str, base_url: str) -> EndpointView:
    try:
        endpoint = await services.serving_endpoints.require(name)
    except ApiError as exc:
        if exc.status != 404:
            raise
        raise PageError(
            exc.error_code,
            f"There is no serving endpoint named '{name}'.",
            "Check the name on the Serving endpoints page: the endpoint may have been deleted or renamed.",
            BACK_TO_LIST,
        ) from None
    return _view(serving_status.endpoint_detail(endpoint, services.controller.snapshot.views, base_url))
