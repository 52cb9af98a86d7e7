"""`ServingEndpoint`: a named serving endpoint, with typed served entities and a traffic split.

    ServingEndpoint(stack, "iris", name="iris",
                    served_entities=[ServedEntity(model="iris-classifier", version="1", name="blue"),
                                     ServedEntity(model="iris-classifier", version="2", name="green")],
                    traffic={"blue": 80, "green": 20},
                    rate_limits=[RateLimit(calls=100), RateLimit(calls=10, key="user")])

Everything that can be checked before Terraform runs is checked when the construct is built, with a
message that says what to write instead. Terraform references (tokens) are left to Terraform and
the backend.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field

from constructs import Construct

from rtserve.cdk._props import check_placement, is_duration, unresolved
from rtserve.cdk.model_endpoint import version_text
from rtserve.cdk.rtserve import (
    RtserveProvider,
    ServingEndpointEmailNotifications,
    ServingEndpointInferenceTableConfig,
    ServingEndpointRateLimits,
    ServingEndpointServedEntities,
    ServingEndpointTimeouts,
    ServingEndpointTrafficConfig,
    ServingEndpointTrafficConfigRoutes,
    ServingEndpointUsageTrackingConfig,
)
from rtserve.cdk.rtserve import ServingEndpoint as ServingEndpointResource
from rtserve.spec import (
    CALLER_KEYS,
    DEFAULT_RATE_LIMIT_KEY,
    DEFAULT_RENEWAL_PERIOD,
    DEFAULT_SCALE_TO_ZERO,
    DEFAULT_WORKLOAD_SIZE,
    ENDPOINT_KEY,
    ENVIRONMENT_POLICIES,
    MAX_CALLS,
    MAX_SERVED_ENTITIES,
    NAME_PATTERN,
    NAME_RULE,
    PROVISIONED_CONCURRENCY_RULE,
    RENEWAL_PERIODS,
    TRAFFIC_PERCENTAGE_RULE,
    TRAFFIC_TOTAL,
    SpecError,
    WorkloadSize,
    check_calls,
    check_email_addresses,
    check_principal,
    check_provisioned_concurrency,
    check_rate_limit_key,
    check_renewal_period,
    check_table_name_part,
    check_traffic_percentage,
    check_traffic_total,
    check_workload_size,
    one_of_rule,
    rate_limit_callers,
)

ENDPOINT_NAME = f"ServingEndpoint: name must be {NAME_RULE}; got {{value!r}}"
NO_ENTITIES = (
    "ServingEndpoint: served_entities needs at least one ServedEntity, "
    "e.g. [ServedEntity(model='iris-classifier', version='1')]; got {value!r}"
)
TOO_MANY_ENTITIES = f"ServingEndpoint: served_entities holds at most {MAX_SERVED_ENTITIES} entities; got {{count}}"
ENTITY_TYPE = "ServingEndpoint: served_entities[{index}] must be a ServedEntity; got {value!r}"
DUPLICATE_ENTITY = (
    "ServingEndpoint: served entity names must be unique; {name!r} is used twice "
    "(an entity without a name is named '<model>-<version>': give each one its own name)"
)
TRAFFIC_REQUIRED = (
    "ServingEndpoint: traffic is required with several served entities: map each name to its share, "
    "e.g. traffic={example}"
)
TRAFFIC_UNKNOWN = "ServingEndpoint: traffic names {name!r}, which is not a served entity of this endpoint ({names})"
TRAFFIC_SHARE = f"ServingEndpoint: traffic[{{name!r}}] must be {TRAFFIC_PERCENTAGE_RULE}; got {{value!r}}"
TRAFFIC_SUM = f"ServingEndpoint: traffic must sum to {TRAFFIC_TOTAL}; {{traffic}} sums to {{total}}"
TAG = "ServingEndpoint: tags must map non-empty strings to strings; got {key!r}: {value!r}"
TIMEOUT_FORMAT = "ServingEndpoint: timeout must be a duration such as '90s', '20m' or '1h30m'; got {value!r}"
ENTITY_MODEL = "ServedEntity: model must be a non-empty string (the registered model); got {value!r}"
ENTITY_VERSION = "ServedEntity: version must be a model version number such as '2'; got {value!r}"
ENTITY_NAME = f"ServedEntity: name must be {NAME_RULE}; got {{value!r}}"
ENTITY_SIZE = "ServedEntity: {field} must be {rule}; got {value!r}"
ENTITY_VARIABLES = (
    "ServedEntity: environment_vars must map variable names to strings, e.g. "
    '{{"API_TOKEN": "{{{{secrets/team/api-token}}}}"}}; got {value!r}'
)
DESCRIPTION = "ServingEndpoint: description must be a string; got {value!r}"
ROUTE_OPTIMIZED = "ServingEndpoint: route_optimized must be True or False; got {value!r}"
NOTIFICATIONS_TYPE = "ServingEndpoint: email_notifications must be an EmailNotifications; got {value!r}"
NOTIFIED_ADDRESSES = "EmailNotifications: {message}"
TABLE_TYPE = "ServingEndpoint: {field} must be an InferenceTable; got {value!r}"
TABLE_NAME = "InferenceTable: {message}"
TABLE_ENABLED = "InferenceTable: enabled must be True or False; got {value!r}"
USAGE_TRACKING = "ServingEndpoint: usage_tracking must be True or False; got {value!r}"
TWO_TABLES = (
    "ServingEndpoint: an endpoint logs to one payload table: give inference_table or auto_capture (the legacy "
    "form), not both enabled"
)
ENTITY_PROVISIONED = (
    f"ServedEntity: provisioned_concurrency must be (min, max): {PROVISIONED_CONCURRENCY_RULE}; got {{value!r}}"
)
ENTITY_ENVIRONMENT_POLICY = (
    f"ServedEntity: environment_policy must be {one_of_rule(ENVIRONMENT_POLICIES)} or None; got {{value!r}}"
)
ENTITY_PROVISIONED_AND_SIZE = (
    "ServedEntity: give workload_size or provisioned_concurrency, not both; got workload_size {value!r}"
)
LIMITS_LIST = "ServingEndpoint: rate_limits must be a list of RateLimit, e.g. [RateLimit(calls=100)]; got {value!r}"
LIMIT_TYPE = "ServingEndpoint: rate_limits[{index}] must be a RateLimit; got {value!r}"
LIMITS_TWICE = (
    "ServingEndpoint: rate_limits has two limits for the same callers ({first} and {second}); "
    "the endpoint keeps one limit for the endpoint, one per token and one per named token: keep one"
)
LIMIT_CALLS = "RateLimit: calls must be a whole number of calls per minute, 0 or more; got {value!r}"
LIMIT_TOO_MANY = f"RateLimit: calls must be at most {MAX_CALLS:,} per minute; got {{value!r}}"
_TOKEN_KEYS = " or ".join(map(repr, CALLER_KEYS))
LIMIT_KEY = (
    f"RateLimit: key must be {ENDPOINT_KEY!r} (every caller together), {_TOKEN_KEYS} (each token); got {{value!r}}"
)
LIMIT_PRINCIPAL = f"RateLimit: principal {{value!r}} names a token, so key must be {_TOKEN_KEYS}; got key {{key!r}}"
LIMIT_PRINCIPAL_NAME = "RateLimit: principal must be a token's name; got {value!r}"
LIMIT_PERIOD = (
    f"RateLimit: renewal_period must be {one_of_rule(RENEWAL_PERIODS)} (the only period counted); got {{value!r}}"
)


@dataclass(frozen=True)
class ServedEntity:
    """One model version served by the endpoint.

    :param model: the registered model (required).
    :param version: its version number, ``"2"`` or ``2`` (required).
    :param workload_size: requests served in parallel: Small 4, Medium 8-16, Large 16-64.
        @default WorkloadSize.SMALL, unless provisioned concurrency is given
    :param scale_to_zero: release every replica when idle; the next request waits for a cold start. @default False
    :param name: the name traffic routes and ``/served-models/<name>/invocations`` use.
        @default ``"<model>-<version>"``, as the backend
    :param provisioned_concurrency: ``(min, max)`` concurrent requests to provision for, instead of
        ``workload_size`` (multiples of 4, ``0 <= min <= max``, ``4 <= max <= 64``). @default None
    :param environment_policy: where the version runs: ``"auto"`` (the server's environment when it satisfies
        the model's logged requirements, else one built with uv), ``"local"`` or ``"isolated"``
        (docs/environments.md). @default None, the server's RTSERVE_ENVIRONMENT_POLICY
    :param environment_vars: variables set in the replicas before the model loads; a value
        ``"{{secrets/<scope>/<key>}}"`` is that secret's value (``rtserve secrets put``), and plans show
        only the reference. @default None: none
    :param placement_node_labels: Ray engine only: labels a Ray node must carry (each equal) for the
        replicas to run there (docs/ray.md). @default None: any node
    :param placement_resources: Ray engine only: custom Ray resources each replica reserves on its node,
        e.g. ``{"licensed": 1}``. @default None: none
    """

    model: str
    version: str | int
    workload_size: WorkloadSize | str | None = None
    scale_to_zero: bool = DEFAULT_SCALE_TO_ZERO
    name: str | None = None
    provisioned_concurrency: tuple[int, int] | None = None
    environment_policy: str | None = None
    environment_vars: Mapping[str, str] | None = dataclass_field(default=None, hash=False)
    placement_node_labels: Mapping[str, str] | None = dataclass_field(default=None, hash=False)
    placement_resources: Mapping[str, int | float] | None = dataclass_field(default=None, hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not (self.model.strip() or unresolved(self.model)):
            raise ValueError(ENTITY_MODEL.format(value=self.model))
        object.__setattr__(self, "version", version_text(self.version, ENTITY_VERSION.format(value=self.version)))
        if self.provisioned_concurrency is not None:
            _check_provisioned(self.provisioned_concurrency, self.workload_size)
        else:
            try:
                size = DEFAULT_WORKLOAD_SIZE if self.workload_size is None else self.workload_size
                object.__setattr__(self, "workload_size", WorkloadSize(check_workload_size(size)))
            except SpecError as error:
                raise ValueError(ENTITY_SIZE.format(field=error.field, rule=error.rule, value=error.value)) from None
        if self.name is not None and not _is_name(self.name):
            raise ValueError(ENTITY_NAME.format(value=self.name))
        if self.environment_policy is not None and self.environment_policy not in ENVIRONMENT_POLICIES:
            raise ValueError(ENTITY_ENVIRONMENT_POLICY.format(value=self.environment_policy))
        variables = self.environment_vars
        if variables is not None and not (
            isinstance(variables, Mapping)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in variables.items())
        ):
            raise ValueError(ENTITY_VARIABLES.format(value=variables))
        check_placement("ServedEntity", self.placement_node_labels, self.placement_resources)

    @property
    def served_name(self) -> str | None:
        """The name the endpoint knows this entity by; None while it depends on a Terraform reference."""
        if self.name is not None:
            return None if unresolved(self.name) else self.name
        if unresolved(self.model) or unresolved(self.version):
            return None
        return f"{self.model}-{self.version}"

    def _binding(self) -> ServingEndpointServedEntities:
        return ServingEndpointServedEntities(
            entity_name=self.model,
            entity_version=str(self.version),
            name=self.name,
            workload_size=WorkloadSize(self.workload_size).value if self.workload_size is not None else None,
            scale_to_zero_enabled=self.scale_to_zero,
            min_provisioned_concurrency=self.provisioned_concurrency[0] if self.provisioned_concurrency else None,
            max_provisioned_concurrency=self.provisioned_concurrency[1] if self.provisioned_concurrency else None,
            environment_policy=self.environment_policy,
            environment_vars=dict(self.environment_vars) if self.environment_vars else None,
            placement_node_labels=dict(self.placement_node_labels) if self.placement_node_labels else None,
            placement_resources=dict(self.placement_resources) if self.placement_resources else None,
        )


def _check_provisioned(provisioned: object, workload_size: object) -> None:
    if workload_size is not None:
        raise ValueError(ENTITY_PROVISIONED_AND_SIZE.format(value=workload_size))
    if not isinstance(provisioned, tuple) or len(provisioned) != 2:
        raise ValueError(ENTITY_PROVISIONED.format(value=provisioned))
    try:
        check_provisioned_concurrency(*provisioned)
    except SpecError:
        raise ValueError(ENTITY_PROVISIONED.format(value=provisioned)) from None


@dataclass(frozen=True)
class RateLimit:
    """A limit on scoring requests: ``calls`` per minute, for the whole endpoint or for each token.

    Changing, adding or removing limits is applied in place (no config update, no rollout).

    :param calls: requests allowed per minute, 0 or more (0 refuses every request) (required).
    :param key: who shares the limit: ``"endpoint"`` (every caller together), ``"user"`` or
        ``"service_principal"`` (each token on its own). @default "endpoint"
    :param principal: with a per-token key, the one token (by name) this limit is for, in place of the
        per-token limit without a principal. @default None
    :param renewal_period: the period ``calls`` are counted over; only ``"minute"``. @default "minute"
    """

    calls: int
    key: str = DEFAULT_RATE_LIMIT_KEY
    principal: str | None = None
    renewal_period: str = DEFAULT_RENEWAL_PERIOD

    def __post_init__(self) -> None:
        if not unresolved(self.calls):
            try:
                check_calls(self.calls)
            except SpecError as error:
                message = LIMIT_TOO_MANY if error.reason == "too_many" else LIMIT_CALLS
                raise ValueError(message.format(value=self.calls)) from None
        if not unresolved(self.key):
            try:
                check_rate_limit_key(self.key)
            except SpecError:
                raise ValueError(LIMIT_KEY.format(value=self.key)) from None
        try:
            check_principal(self.principal, self.key)
        except SpecError as error:
            message = LIMIT_PRINCIPAL_NAME if error.reason == "no_name" else LIMIT_PRINCIPAL
            raise ValueError(message.format(value=self.principal, key=self.key)) from None
        if not unresolved(self.renewal_period):
            try:
                check_renewal_period(self.renewal_period)
            except SpecError:
                raise ValueError(LIMIT_PERIOD.format(value=self.renewal_period)) from None

    @property
    def callers(self) -> tuple[str, str | None] | None:
        """Whom the limit counts (the endpoint, or tokens: all or one); None while it depends on a reference."""
        if unresolved(self.key) or (self.principal is not None and unresolved(self.principal)):
            return None
        return rate_limit_callers(self.key, self.principal)

    def _binding(self) -> ServingEndpointRateLimits:
        return ServingEndpointRateLimits(
            calls=self.calls, key=self.key, principal=self.principal, renewal_period=self.renewal_period
        )


@dataclass(frozen=True)
class EmailNotifications:
    """Who the backend e-mails when a config update of the endpoint finishes (through the SMTP server it is
    configured with; without one, the e-mail is only recorded in the endpoint's events). Changed in place.

    :param on_update_failure: addresses told when a config update fails (UPDATE_FAILED). @default (): nobody
    :param on_update_success: addresses told when a config update succeeds (the new config serves).
        @default (): nobody
    """

    on_update_failure: Sequence[str] = ()
    on_update_success: Sequence[str] = ()

    def __post_init__(self) -> None:
        for field in ("on_update_failure", "on_update_success"):
            addresses = getattr(self, field)
            known = [a for a in addresses if not unresolved(a)] if isinstance(addresses, list | tuple) else addresses
            try:
                check_email_addresses(known, field)
            except SpecError as error:
                raise ValueError(NOTIFIED_ADDRESSES.format(message=error.message)) from None

    def _binding(self) -> ServingEndpointEmailNotifications:
        return ServingEndpointEmailNotifications(
            on_update_failure=list(self.on_update_failure) or None,
            on_update_success=list(self.on_update_success) or None,
        )


@dataclass(frozen=True)
class InferenceTable:
    """A Delta table the endpoint's answered requests are logged to (docs/inference-tables.md):
    ``<warehouse>/<catalog>/<schema>/<table_name_prefix>_payload``.

    :param catalog: the table's catalog, a directory under the warehouse (required).
    :param schema: the table's schema, a directory under the catalog (required).
    :param table_name_prefix: the table is ``<prefix>_payload``. @default None: the endpoint's name
    :param enabled: whether requests are logged. @default True
    """

    catalog: str
    schema: str
    table_name_prefix: str | None = None
    enabled: bool = True

    def __post_init__(self) -> None:
        parts = {"catalog": self.catalog, "schema": self.schema}
        if self.table_name_prefix is not None:
            parts["table_name_prefix"] = self.table_name_prefix
        for field, value in parts.items():
            if unresolved(value):
                continue
            try:
                check_table_name_part(value, field)
            except SpecError as error:
                raise ValueError(TABLE_NAME.format(message=error.message)) from None
        if not isinstance(self.enabled, bool):
            raise ValueError(TABLE_ENABLED.format(value=self.enabled))

    def _binding(self) -> ServingEndpointInferenceTableConfig:
        return ServingEndpointInferenceTableConfig(self.catalog, self.schema, self.table_name_prefix, self.enabled)


class ServingEndpoint(Construct):
    """A named serving endpoint: one or more model versions behind one URL, with a traffic split.

    Changing a version or the split is a config update the backend rolls out with zero downtime; a
    deploy returns once the new config serves every request.

    :param name: the endpoint's name, in its URL ``<host>/serving-endpoints/<name>/invocations`` (required).
    :param served_entities: the model versions served, each a ServedEntity (at least one, required).
    :param traffic: served entity name -> percentage of requests, summing to 100, e.g.
        ``{"blue": 80, "green": 20}``. @default None: all traffic to the only served entity
        (required with several).
    :param tags: tags of the endpoint. @default None
    :param rate_limits: limits on scoring requests, each a RateLimit; changed in place. @default None: no limits
    :param description: what the endpoint is for; changing it replaces the endpoint. @default None
    :param route_optimized: recorded and answered as on Databricks (rtserve endpoints already take the
        shortest path); changing it replaces the endpoint. @default False
    :param email_notifications: who is e-mailed when a config update finishes, an EmailNotifications;
        changed in place. @default None: nobody
    :param inference_table: the AI gateway's inference table, an InferenceTable; changed in place.
        @default None: requests are not logged
    :param usage_tracking: one usage row per request in ``<warehouse>/system/serving/endpoint_usage``; changed
        in place. @default False
    :param auto_capture: the legacy form of the inference table (part of the config: changing it is a config
        update), an InferenceTable; not with an enabled ``inference_table``. @default None
    :param timeout: how long a deploy waits for the endpoint to be ready. @default "20m"
    :param provider: the rtserve provider to use. @default the stack's default provider
    """

    def __init__(
        self,
        scope: Construct,
        id: str,  # noqa: A002 - the constructs convention
        *,
        name: str,
        served_entities: Sequence[ServedEntity],
        traffic: Mapping[str, int] | None = None,
        tags: Mapping[str, str] | None = None,
        rate_limits: Sequence[RateLimit] | None = None,
        description: str | None = None,
        route_optimized: bool = False,
        email_notifications: EmailNotifications | None = None,
        inference_table: InferenceTable | None = None,
        usage_tracking: bool = False,
        auto_capture: InferenceTable | None = None,
        timeout: str = "20m",
        provider: RtserveProvider | None = None,
    ) -> None:
        super().__init__(scope, id)
        if description is not None and not isinstance(description, str):
            raise ValueError(DESCRIPTION.format(value=description))
        if not isinstance(route_optimized, bool):
            raise ValueError(ROUTE_OPTIMIZED.format(value=route_optimized))
        if email_notifications is not None and not isinstance(email_notifications, EmailNotifications):
            raise ValueError(NOTIFICATIONS_TYPE.format(value=email_notifications))
        _validate(name, served_entities, traffic, tags, timeout)
        _validate_tables(inference_table, usage_tracking, auto_capture)
        self.rate_limits = _validate_rate_limits(rate_limits)
        self.name = name
        self.served_entities = list(served_entities)
        self.resource = ServingEndpointResource(
            self,
            "resource",
            name=name,
            served_entities=[entity._binding() for entity in served_entities],
            traffic_config=_traffic_config(traffic),
            tags=tags,
            rate_limits=[limit._binding() for limit in self.rate_limits] or None,
            description=description,
            route_optimized=route_optimized or None,
            email_notifications=email_notifications._binding() if email_notifications else None,
            inference_table_config=inference_table._binding() if inference_table else None,
            usage_tracking_config=ServingEndpointUsageTrackingConfig(enabled=True) if usage_tracking else None,
            auto_capture_config=auto_capture._binding() if auto_capture else None,
            timeouts=ServingEndpointTimeouts(create=timeout, update=timeout),
            provider=provider,
        )

    # -- read-only attributes (Terraform references, resolved at apply) -----------------------
    @property
    def endpoint_url(self) -> str:
        """`<host>/serving-endpoints/<name>/invocations`."""
        return self.resource.endpoint_url

    @property
    def endpoint_id(self) -> str:
        return self.resource.endpoint_id

    @property
    def config_version(self) -> float:
        return self.resource.config_version

    @property
    def state_ready(self) -> str:
        """READY once deployed."""
        return self.resource.state_ready


def _traffic_config(traffic: Mapping[str, int] | None) -> ServingEndpointTrafficConfig | None:
    if traffic is None:
        return None
    return ServingEndpointTrafficConfig(
        routes=[
            ServingEndpointTrafficConfigRoutes(served_model_name=n, traffic_percentage=p) for n, p in traffic.items()
        ]
    )


def _validate(
    name: str,
    entities: Sequence[ServedEntity],
    traffic: Mapping[str, int] | None,
    tags: Mapping[str, str] | None,
    timeout: str,
) -> None:
    """Check every prop before any child exists."""
    if not _is_name(name):
        raise ValueError(ENDPOINT_NAME.format(value=name))
    if isinstance(entities, str | bytes) or not isinstance(entities, Sequence) or not entities:
        raise ValueError(NO_ENTITIES.format(value=entities))
    if len(entities) > MAX_SERVED_ENTITIES:
        raise ValueError(TOO_MANY_ENTITIES.format(count=len(entities)))
    names: list[str] = []
    for index, entity in enumerate(entities):
        if not isinstance(entity, ServedEntity):
            raise TypeError(ENTITY_TYPE.format(index=index, value=entity))
        served = entity.served_name
        if served is not None and served in names:
            raise ValueError(DUPLICATE_ENTITY.format(name=served))
        if served is not None:
            names.append(served)
    all_named = len(names) == len(entities)
    if traffic is None:
        if len(entities) > 1:
            raise ValueError(
                TRAFFIC_REQUIRED.format(example=_even_split(names) if all_named else "{'<name>': 50, ...}")
            )
    else:
        _validate_traffic(traffic, names if all_named else None)
    for key, value in (tags or {}).items():
        if not (isinstance(key, str) and key) or not isinstance(value, str):
            raise ValueError(TAG.format(key=key, value=value))
    if not is_duration(timeout):
        raise ValueError(TIMEOUT_FORMAT.format(value=timeout))


def _is_name(value: object) -> bool:
    """An endpoint or served entity name the backend accepts, or a reference."""
    return isinstance(value, str) and (bool(NAME_PATTERN.match(value)) or unresolved(value))


def _even_split(names: list[str]) -> dict[str, int]:
    """An example traffic mapping for an error message: 100 shared out, the remainder to the first."""
    share, remainder = divmod(TRAFFIC_TOTAL, len(names))
    return {name: share + (remainder if index == 0 else 0) for index, name in enumerate(names)}


def _validate_traffic(traffic: Mapping[str, int], names: list[str] | None) -> None:
    """Routes name served entities and take whole percentages summing to 100; references are skipped."""
    shares, all_known = [], True
    for served, share in traffic.items():
        if names is not None and not unresolved(served) and served not in names:
            raise ValueError(TRAFFIC_UNKNOWN.format(name=served, names=", ".join(names)))
        if unresolved(share):
            all_known = False
            continue
        try:
            shares.append(check_traffic_percentage(share))
        except SpecError:
            raise ValueError(TRAFFIC_SHARE.format(name=served, value=share)) from None
    if all_known:
        try:
            check_traffic_total(shares)
        except SpecError as error:
            raise ValueError(TRAFFIC_SUM.format(traffic=dict(traffic), total=error.value)) from None


def _validate_rate_limits(limits: Sequence[RateLimit] | None) -> list[RateLimit]:
    """RateLimit objects, at most one for the same callers (the endpoint, each token, one named token)."""
    if limits is None:
        return []
    if isinstance(limits, str | bytes) or not isinstance(limits, Sequence):
        raise TypeError(LIMITS_LIST.format(value=limits))
    seen: dict[tuple[str, str | None], RateLimit] = {}
    for index, limit in enumerate(limits):
        if not isinstance(limit, RateLimit):
            raise TypeError(LIMIT_TYPE.format(index=index, value=limit))
        callers = limit.callers
        if callers is not None and callers in seen:
            raise ValueError(LIMITS_TWICE.format(first=seen[callers], second=limit))
        if callers is not None:
            seen[callers] = limit
    return list(limits)


def _validate_tables(inference_table: object, usage_tracking: object, auto_capture: object) -> None:
    for field, table in (("inference_table", inference_table), ("auto_capture", auto_capture)):
        if table is not None and not isinstance(table, InferenceTable):
            raise ValueError(TABLE_TYPE.format(field=field, value=table))
    if not isinstance(usage_tracking, bool):
        raise ValueError(USAGE_TRACKING.format(value=usage_tracking))
    if all(isinstance(table, InferenceTable) and table.enabled for table in (inference_table, auto_capture)):
        raise ValueError(TWO_TABLES)
