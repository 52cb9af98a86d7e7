"""A serving endpoint's config (seed 002's GA API): validation, its stored form and its wire form.

Pure: no I/O. `parse_config` turns a request's `config` into an `EndpointConfig` or raises an
`ApiError` that says which field is wrong and what it accepts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rtserve import spec
from rtserve.server.control.environment_vars import Variables, parse_environment_vars
from rtserve.server.control.placement import Placement, parse_placement
from rtserve.server.control.workloads import Compute
from rtserve.server.errors import invalid
from rtserve.server.validate import checked, known_fields, version_number
from rtserve.spec import DEFAULT_WORKLOAD_SIZE, ENVIRONMENT_POLICIES, MAX_SERVED_ENTITIES
from rtserve.spec import NAME_PATTERN as NAME_PATTERN
from rtserve.spec import NAME_RULE as NAME_RULE


@dataclass(frozen=True)
class ServedEntity:
    name: str
    entity_name: str  # the registered model
    entity_version: str
    workload_size: str = DEFAULT_WORKLOAD_SIZE
    scale_to_zero_enabled: bool = False
    # Provisioned concurrency, Databricks' alternative to a workload size: the range replicas scale within.
    min_provisioned_concurrency: int | None = None
    max_provisioned_concurrency: int | None = None
    # rtserve's own: where the version runs (auto|local|isolated, docs/environments.md); None: the server's policy.
    environment_policy: str | None = None
    # As configured: a secret stays its reference ({{secrets/<scope>/<key>}}); resolved only at replica start.
    environment_vars: Variables = ()
    # rtserve's own: the Ray nodes its replicas may run on (control/placement.py); None: anywhere.
    placement: Placement | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.entity_name, self.entity_version)

    @property
    def provisioned(self) -> tuple[int, int] | None:
        if self.min_provisioned_concurrency is None or self.max_provisioned_concurrency is None:
            return None
        return (self.min_provisioned_concurrency, self.max_provisioned_concurrency)

    @property
    def compute(self) -> Compute:
        return Compute(
            self.workload_size,
            self.scale_to_zero_enabled,
            provisioned_concurrency=self.provisioned,
            environment_vars=self.environment_vars,
            placement=self.placement,
        )


@dataclass(frozen=True)
class EndpointConfig:
    served_entities: tuple[ServedEntity, ...]
    traffic: tuple[tuple[str, int], ...]  # the traffic split: (served entity name, traffic percentage)
    config_version: int = 1

    def entity(self, name: str) -> ServedEntity | None:
        return next((entity for entity in self.served_entities if entity.name == name), None)

    def to_stored(self) -> dict[str, Any]:
        return {
            "config_version": self.config_version,
            "served_entities": [
                {
                    "name": e.name,
                    "entity_name": e.entity_name,
                    "entity_version": e.entity_version,
                    "workload_size": e.workload_size,
                    "scale_to_zero_enabled": e.scale_to_zero_enabled,
                    **(
                        {
                            "min_provisioned_concurrency": e.min_provisioned_concurrency,
                            "max_provisioned_concurrency": e.max_provisioned_concurrency,
                        }
                        if e.provisioned
                        else {}
                    ),
                    **({"environment_policy": e.environment_policy} if e.environment_policy else {}),
                    **({"environment_vars": dict(e.environment_vars)} if e.environment_vars else {}),
                    **({"placement": e.placement.to_wire()} if e.placement else {}),
                }
                for e in self.served_entities
            ],
            "routes": [{"served_model_name": name, "traffic_percentage": share} for name, share in self.traffic],
        }

    @classmethod
    def from_stored(cls, stored: dict[str, Any]) -> EndpointConfig:
        return cls(
            served_entities=tuple(
                ServedEntity(
                    **{
                        **entity,
                        "environment_vars": _variables(entity.get("environment_vars", {})),
                        "placement": Placement.from_stored(entity["placement"]) if "placement" in entity else None,
                    }
                )
                for entity in stored["served_entities"]
            ),
            traffic=tuple((route["served_model_name"], route["traffic_percentage"]) for route in stored["routes"]),
            config_version=stored["config_version"],
        )


def _variables(stored: dict[str, str]) -> Variables:
    return tuple(sorted(stored.items()))


# auto_capture_config is read with the endpoint's other table settings (control/inference_tables.py).
CONFIG_FIELDS = ("served_entities", "served_models", "traffic_config", "name", "auto_capture_config")
ENTITY_FIELDS = (
    "name",
    "workload_size",
    "scale_to_zero_enabled",
    "workload_type",
    "environment_vars",
    "min_provisioned_concurrency",
    "max_provisioned_concurrency",
    "environment_policy",  # rtserve's own (not Databricks'): docs/environments.md
    "placement",  # rtserve's own: the Ray nodes replicas run on, docs/ray.md
)
REFUSED_ENTITY_FIELDS = {
    "external_model": "rtserve serves registered MLflow models only (no external model providers).",
    "instance_profile_arn": "rtserve runs no cloud instances; give replicas credentials in the backend's environment.",
    "min_provisioned_throughput": "provisioned throughput is for foundation models; use workload_size or "
    "min_provisioned_concurrency/max_provisioned_concurrency.",
    "max_provisioned_throughput": "provisioned throughput is for foundation models; use workload_size or "
    "min_provisioned_concurrency/max_provisioned_concurrency.",
    "provisioned_model_units": "provisioned throughput is for foundation models; use workload_size.",
    "burst_scaling_enabled": "rtserve never scales a served entity past its range (its workload size or "
    "max_provisioned_concurrency); remove it.",
}
ROUTE_FIELDS = ("served_model_name", "served_entity_name", "traffic_percentage")


def parse_config(config: Any, config_version: int) -> EndpointConfig:
    """A request's `config` ({served_entities | served_models, traffic_config}) as an EndpointConfig."""
    if not isinstance(config, dict):
        raise invalid("'config' must be an object with 'served_entities' (or 'served_models') and 'traffic_config'.")
    known_fields(config, "config", CONFIG_FIELDS)
    has_entities, has_models = "served_entities" in config, "served_models" in config
    if has_entities == has_models:
        raise invalid("'config' needs exactly one of 'served_entities' and 'served_models' (the legacy form).")
    field = "served_entities" if has_entities else "served_models"
    items = config[field]
    if not isinstance(items, list) or not items:
        raise invalid(f"'config.{field}' must be a non-empty list.")
    if len(items) > MAX_SERVED_ENTITIES:
        raise invalid(f"'config.{field}' may hold at most {MAX_SERVED_ENTITIES} served entities; got {len(items)}.")
    entities = tuple(_parse_entity(item, f"config.{field}[{i}]", legacy=has_models) for i, item in enumerate(items))
    names = [entity.name for entity in entities]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise invalid(f"Served entity names must be unique within a config; repeated: {', '.join(duplicates)}.")
    _same_replicas_per_version(entities, field)
    return EndpointConfig(entities, _parse_traffic(config.get("traffic_config"), names), config_version)


def _parse_entity(item: Any, where: str, legacy: bool) -> ServedEntity:
    if not isinstance(item, dict):
        raise invalid(f"'{where}' must be an object.")
    name_field, version_field = ("model_name", "model_version") if legacy else ("entity_name", "entity_version")
    known_fields(item, where, (name_field, version_field, *ENTITY_FIELDS), REFUSED_ENTITY_FIELDS)
    model = item.get(name_field)
    if not isinstance(model, str) or not model:
        raise invalid(f"'{where}.{name_field}' is required: the registered model to serve.")
    version = version_number(item.get(version_field), f"{where}.{version_field}")
    provisioned = _provisioned_concurrency(item, where)
    size = checked(spec.check_workload_size, item.get("workload_size", DEFAULT_WORKLOAD_SIZE), f"{where}.workload_size")
    scale_to_zero = item.get("scale_to_zero_enabled", False)
    if not isinstance(scale_to_zero, bool):
        raise invalid(f"'{where}.scale_to_zero_enabled' must be true or false; got {scale_to_zero!r}.")
    environment_vars = parse_environment_vars(item.get("environment_vars"), f"{where}.environment_vars")
    if item.get("workload_type") not in (None, "CPU"):
        raise invalid(f"'{where}.workload_type' must be CPU (rtserve serves on CPU); got {item['workload_type']!r}.")
    policy = item.get("environment_policy")
    if policy is not None and policy not in ENVIRONMENT_POLICIES:
        raise invalid(f"'{where}.environment_policy' must be one of {', '.join(ENVIRONMENT_POLICIES)}; got {policy!r}.")
    placement = parse_placement(item.get("placement"), f"{where}.placement")
    name = item.get("name", f"{model}-{version}")
    name = checked(spec.check_name, name, f"{where}.name")
    low, high = provisioned or (None, None)
    return ServedEntity(name, model, version, size, scale_to_zero, low, high, policy, environment_vars, placement)


def replica_difference(a: ServedEntity, b: ServedEntity) -> str | None:
    """The field two entities serving one version disagree on, of those its one set of replicas runs with."""
    if a.environment_vars != b.environment_vars:
        return "environment_vars"
    if a.placement != b.placement:
        return "placement"
    return None


def _same_replicas_per_version(entities: tuple[ServedEntity, ...], field: str) -> None:
    """A version runs one set of replicas, so the entities serving it must agree on their environment and nodes."""
    first: dict[tuple[str, str], ServedEntity] = {}
    for entity in entities:
        seen = first.setdefault(entity.key, entity)
        if (differs := replica_difference(seen, entity)) is not None:
            raise invalid(
                f"'config.{field}': '{seen.name}' and '{entity.name}' serve version {entity.entity_version} of "
                f"'{entity.entity_name}' with different {differs}; a version runs one set of replicas, "
                f"so give them the same {differs}."
            )


def _provisioned_concurrency(item: dict[str, Any], where: str) -> tuple[int, int] | None:
    """Databricks' rules: both bounds or neither, not with a workload size, multiples of 4, min <= max."""
    low, high = item.get("min_provisioned_concurrency"), item.get("max_provisioned_concurrency")
    if low is None and high is None:
        return None
    if low is None or high is None:
        missing = "min_provisioned_concurrency" if low is None else "max_provisioned_concurrency"
        raise invalid(f"'{where}.{missing}' is required with the other bound of provisioned concurrency.")
    if item.get("workload_size") is not None:
        raise invalid(
            f"'{where}.workload_size' and provisioned concurrency exclude each other: give workload_size, or "
            "min_provisioned_concurrency and max_provisioned_concurrency."
        )
    return checked(spec.check_provisioned_concurrency, low, high, where)


def _parse_traffic(traffic: Any, names: list[str]) -> tuple[tuple[str, int], ...]:
    if traffic is None:
        if len(names) == 1:
            return ((names[0], 100),)
        raise invalid(
            "'config.traffic_config' is required when a config serves several entities: "
            "give 'routes' with each served entity's traffic_percentage, summing to 100."
        )
    if not isinstance(traffic, dict) or not isinstance(traffic.get("routes"), list) or not traffic["routes"]:
        raise invalid('\'config.traffic_config\' must be {"routes": [{"served_model_name", "traffic_percentage"}]}.')
    known_fields(traffic, "config.traffic_config", ("routes",))
    routes: list[tuple[str, int]] = []
    for i, route in enumerate(traffic["routes"]):
        where = f"config.traffic_config.routes[{i}]"
        if not isinstance(route, dict):
            raise invalid(f"'{where}' must be an object.")
        known_fields(route, where, ROUTE_FIELDS)
        name = route.get("served_model_name", route.get("served_entity_name"))
        if name not in names:
            raise invalid(f"'{where}.served_model_name' must name a served entity of this config ({', '.join(names)}).")
        share = checked(spec.check_traffic_percentage, route.get("traffic_percentage"), f"{where}.traffic_percentage")
        if any(existing == name for existing, _ in routes):
            raise invalid(f"'{where}': served entity '{name}' has more than one route.")
        routes.append((name, share))
    checked(spec.check_traffic_total, [share for _, share in routes])
    return tuple(routes)


def parse_tags(tags: Any, where: str = "tags") -> list[dict[str, str]]:
    """[{key, value?}] checked: keys non-empty strings, values strings."""
    if tags is None:
        return []
    if not isinstance(tags, list):
        raise invalid(f'\'{where}\' must be a list of {{"key", "value"}} objects.')
    parsed = []
    for i, tag in enumerate(tags):
        if not isinstance(tag, dict) or not isinstance(tag.get("key"), str) or not tag["key"]:
            raise invalid(f"'{where}[{i}]' must be an object with a non-empty string 'key'.")
        known_fields(tag, f"{where}[{i}]", ("key", "value"))
        value = tag.get("value")
        if value is not None and not isinstance(value, str):
            raise invalid(f"'{where}[{i}].value' must be a string.")
        parsed.append({"key": tag["key"], **({"value": value} if value is not None else {})})
    return parsed
