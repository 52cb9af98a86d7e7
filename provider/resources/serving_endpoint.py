"""`rtserve_serving_endpoint`: a named serving endpoint of the GA API, serving model versions with a traffic split.

Create POSTs the endpoint and waits until it is READY with no config update in progress (not merely
"not updating"): a served entity that fails to deploy fails the apply with the backend's
deployment_state_message. A change of served entities or traffic PUTs a new config, which the
backend rolls out next to the current one and switches to once every served entity is ready, so
scoring never stops; the apply waits for that switch the same way. A change of tags alone is one
PATCH (no rollout), and so is a change of e-mail notifications (PATCH .../notifications). Rate limits
are sent with the create, so the endpoint never serves without them; changing, adding or removing
them is one PUT .../ai-gateway, in place (no config update, no wait).

Drift: an endpoint deleted out of band makes read return None (Terraform plans a re-create); a
config, tags or rate limits changed out of band show as a diff. The pure parts (defaults, request, state, progress)
are in serving_endpoint_config.py.
"""

from __future__ import annotations

from collections.abc import Callable

from tf.iface import Config, PlanContext, State
from tf.schema import Attribute, Block, Schema
from tf.types import Bool, List, Map, Number, String, Unknown
from tf.utils import Diagnostics

from rtserve.provider.base import report_api_error
from rtserve.provider.blocks import ListNestedBlock, Object, timeout_seconds, timeouts_block, validate_timeouts
from rtserve.provider.client import ApiError, RtserveClient
from rtserve.provider.resources.compute import compute_attributes, placement_attributes
from rtserve.provider.resources.crud import RtserveResource, WaitReport
from rtserve.provider.resources.email_notifications import EMAIL_NOTIFICATIONS, addresses_of, request_notifications
from rtserve.provider.resources.inference_tables import BLOCKS as TABLE_BLOCKS
from rtserve.provider.resources.inference_tables import (
    gateway_tables_of,
    request_gateway_tables,
    request_table,
    table_with_defaults,
)
from rtserve.provider.resources.rate_limits import (
    RATE_LIMITS,
    limits_changed,
    limits_with_defaults,
    request_limits,
    validate_rate_limits,
)
from rtserve.provider.resources.serving_endpoint_config import (
    config_of,
    default_traffic,
    entities_with_defaults,
    request_config,
    rollout_progress,
    settled_progress,
    state_from_detail,
    tag_changes,
    tag_list,
    tags_of,
    validate_config,
)
from rtserve.provider.waiter import Progress, WaitTimeout
from rtserve.spec import MAX_SERVED_ENTITIES, NAME_RULE, TRAFFIC_TOTAL

RESOURCE_CONFLICT = "RESOURCE_CONFLICT"
STATUS_ATTRIBUTES = ("state_ready", "state_config_update")

SERVED_ENTITIES = ListNestedBlock(
    "served_entities",
    Block(
        description=f"One model version served by the endpoint. At least one; at most {MAX_SERVED_ENTITIES}.",
        attributes=[
            Attribute(
                "name",
                String(),
                description="Name of the served entity, used by `traffic_config` routes and in "
                "`/serving-endpoints/<endpoint>/served-models/<name>/invocations`. "
                "Default: `<entity_name>-<entity_version>`, as the backend.",
                optional=True,
                computed=True,
            ),
            Attribute("entity_name", String(), description="The registered model.", required=True),
            Attribute("entity_version", String(), description='The model version number, e.g. `"2"`.', required=True),
            *compute_attributes(),
            Attribute(
                "min_provisioned_concurrency",
                Number(),
                description="With `max_provisioned_concurrency`, instead of `workload_size`: the range of "
                "concurrent requests to provision for (multiples of 4, 0 to 64), as on Databricks.",
                optional=True,
            ),
            Attribute(
                "max_provisioned_concurrency",
                Number(),
                description="The upper bound of provisioned concurrency (a multiple of 4, 4 to 64).",
                optional=True,
            ),
            Attribute(
                "environment_policy",
                String(),
                description="rtserve's own: where the version runs, `auto` (the server's environment when it "
                "satisfies the model's logged requirements, else one built with uv), `local` or `isolated`. "
                "Default: the server's RTSERVE_ENVIRONMENT_POLICY.",
                optional=True,
            ),
            Attribute(
                "environment_vars",
                Map(String()),
                # Not sensitive: it holds references and plain values the configuration itself spells out;
                # a secret's value never reaches Terraform, so plans show `{{secrets/<scope>/<key>}}` to review.
                description="Environment variables set in the replicas before the model loads. A value "
                "`{{secrets/<scope>/<key>}}` is that secret's value (`rtserve secrets put`); plans and state hold "
                "only the reference. Changing them rolls out new replicas.",
                optional=True,
            ),
            *placement_attributes(),
        ],
    ),
    min_items=1,
)

ROUTE = Object({"served_model_name": String(), "traffic_percentage": Number()})
TRAFFIC_CONFIG = Object({"routes": List(ROUTE)})
TIMEOUTS = timeouts_block()


class ServingEndpointResource(RtserveResource):
    OUTPUTS = ("endpoint_id", "config_version", *STATUS_ATTRIBUTES)

    @classmethod
    def get_name(cls) -> str:
        return "serving_endpoint"

    @classmethod
    def get_schema(cls) -> Schema:
        return Schema(
            version=0,
            description="A named serving endpoint: one or more model versions behind one scoring URL, "
            "with a traffic split. Config changes roll out with zero downtime.",
            attributes=[
                Attribute("id", String(), description="The endpoint's name.", computed=True),
                Attribute(
                    "name",
                    String(),
                    description=f"Endpoint name: {NAME_RULE}. Changing it creates another endpoint (replace).",
                    required=True,
                    requires_replace=True,
                ),
                Attribute(
                    "traffic_config",
                    TRAFFIC_CONFIG,
                    description="`{ routes = [{ served_model_name, traffic_percentage }, ...] }`: the share of "
                    f"requests each served entity gets, summing to {TRAFFIC_TOTAL}. Required with several served "
                    "entities; with one, the default sends it all the traffic.",
                    optional=True,
                    computed=True,
                ),
                Attribute("tags", Map(String()), description="Tags of the endpoint (key -> value).", optional=True),
                Attribute(
                    "description",
                    String(),
                    description="What the endpoint is for; set at creation, so changing it replaces the endpoint.",
                    optional=True,
                    requires_replace=True,
                ),
                Attribute(
                    "route_optimized",
                    Bool(),
                    description="Recorded and answered as on Databricks (every rtserve endpoint already takes the "
                    "backend's shortest path); set at creation, so changing it replaces the endpoint. "
                    "Default: `false`.",
                    optional=True,
                    computed=True,
                    requires_replace=True,
                ),
                Attribute("endpoint_id", String(), description="The backend's id of the endpoint.", computed=True),
                Attribute(
                    "endpoint_url",
                    String(),
                    description="Scoring URL: `<host>/serving-endpoints/<name>/invocations`.",
                    computed=True,
                ),
                Attribute(
                    "config_version",
                    Number(),
                    description="Version of the config described by this state; each config update adds one.",
                    computed=True,
                ),
                Attribute(
                    "state_ready",
                    String(),
                    description="`READY` or `NOT_READY`, as of the last refresh.",
                    computed=True,
                ),
                Attribute(
                    "state_config_update",
                    String(),
                    description="`NOT_UPDATING`, `IN_PROGRESS` or `UPDATE_FAILED`, as of the last refresh.",
                    computed=True,
                ),
            ],
            block_types=[SERVED_ENTITIES, RATE_LIMITS, EMAIL_NOTIFICATIONS, *TABLE_BLOCKS, TIMEOUTS],
        )

    # -- validation and plan ---------------------------------------------------------------------
    def validate(self, diags: Diagnostics, type_name: str, config: Config) -> None:
        super().validate(diags, type_name, config)
        validate_config(diags, config)
        validate_rate_limits(diags, config.get("rate_limits"))
        validate_timeouts(diags, config)

    def plan(self, ctx: PlanContext, current: State | None, planned: State) -> State:
        # Without the configuration (a bare PlanContext) unset values look like null planned values.
        source = getattr(ctx, "config", None) or planned
        planned["served_entities"] = entities_with_defaults(
            planned.get("served_entities"), source.get("served_entities")
        )
        if source.get("traffic_config") is None:
            planned["traffic_config"] = default_traffic(planned["served_entities"])
        planned["rate_limits"] = limits_with_defaults(source.get("rate_limits"))
        for block in ("auto_capture_config", "inference_table_config"):
            planned[block] = table_with_defaults(source.get(block), planned.get("name"))
        if source.get("route_optimized") is None:
            planned["route_optimized"] = False
        name = planned.get("name")
        client = self.provider.client
        if isinstance(name, str):
            planned["id"] = name
            if client is not None:
                planned["endpoint_url"] = client.serving_endpoint_url(name)
        unknown: tuple[str, ...]
        if current is None:
            planned["endpoint_id"] = Unknown
            unknown = ("config_version", *STATUS_ATTRIBUTES)
        elif config_of(current) != config_of(planned):
            unknown = ("config_version", *STATUS_ATTRIBUTES)
        elif (
            limits_changed(current, planned)
            or gateway_tables_of(current) != gateway_tables_of(planned)
            or addresses_of(current) != addresses_of(planned)
            or any(current.get(k) != planned.get(k) for k in ("tags", "timeouts"))
        ):
            # Nothing rolls out, but the status is read again after the apply.
            unknown = STATUS_ATTRIBUTES
        else:
            unknown = ()
        for key in unknown:
            planned[key] = Unknown
        return planned

    # -- CRUD ------------------------------------------------------------------------------------
    def create_with(self, diags: Diagnostics, client: RtserveClient, planned: State) -> State | None:
        name = planned["name"]
        try:
            detail = client.create_serving_endpoint(
                name,
                request_config(planned),
                tag_list(tags_of(planned)),
                request_limits(planned.get("rate_limits")),
                description=planned.get("description"),
                route_optimized=bool(planned.get("route_optimized")),
                email_notifications=request_notifications(planned),
                gateway_tables=request_gateway_tables(planned),
            )
        except ApiError as error:
            self._report_create_error(diags, name, error)
            return None
        # From here on the endpoint exists: on error, return it so Terraform records it (tainted).
        self._wait_rollout(
            diags, client, name, _pending_version(detail), timeout_seconds(planned, "create"), create=True
        )
        return self.observe(diags, client, planned)

    def read_with(self, diags: Diagnostics, client: RtserveClient, current: State) -> State | None:
        name = current["name"]
        try:
            detail = client.get_serving_endpoint(name)
        except ApiError as error:
            if error.not_found:
                return None  # deleted out of band: Terraform plans a re-create
            report_api_error(diags, f"Could not read serving endpoint {name!r}", error)
            return current
        return state_from_detail(current, detail, client.serving_endpoint_url(name))

    def update_with(self, diags: Diagnostics, client: RtserveClient, current: State, planned: State) -> State | None:
        name = planned["name"]
        # Tags and rate limits change in place, before any rollout; a refusal stops the update, and the
        # state read back keeps what the backend has, so the next plan shows the change again.
        add, delete = tag_changes(tags_of(current), tags_of(planned))
        changes: list[tuple[str, Callable[[], object]]] = []
        if add or delete:
            changes.append(("tags", lambda: client.patch_serving_endpoint_tags(name, add, delete)))
        if limits_changed(current, planned) or gateway_tables_of(current) != gateway_tables_of(planned):
            limits, tables = request_limits(planned.get("rate_limits")), request_gateway_tables(planned)
            changes.append(("AI gateway", lambda: client.set_serving_endpoint_rate_limits(name, limits, tables)))
        if addresses_of(current) != addresses_of(planned):
            notifications = request_notifications(planned)
            changes.append(
                ("e-mail notifications", lambda: client.set_serving_endpoint_notifications(name, notifications))
            )
        for what, change in changes:
            try:
                change()
            except ApiError as error:
                report_api_error(diags, f"Could not change the {what} of serving endpoint {name!r}", error)
                return self.observe(diags, client, planned)
        if config_of(current) != config_of(planned):
            self._update_config(diags, client, current, planned, timeout_seconds(planned, "update"))
        return self.observe(diags, client, planned)

    def delete_with(self, diags: Diagnostics, client: RtserveClient, current: State) -> None:
        name = current["name"]
        try:
            client.delete_serving_endpoint(name)
        except ApiError as error:
            if not error.not_found:  # already deleted: the goal is reached
                report_api_error(diags, f"Could not delete serving endpoint {name!r}", error)

    def import_with(self, diags: Diagnostics, client: RtserveClient, id: str) -> State | None:  # noqa: A002
        name = id.strip()
        try:
            detail = client.get_serving_endpoint(name)
        except ApiError as error:
            report_api_error(diags, f"Cannot import serving endpoint {name!r}", error)
            return None
        base: State = dict.fromkeys(
            (
                "served_entities",
                "traffic_config",
                "rate_limits",
                "email_notifications",
                "auto_capture_config",
                "inference_table_config",
                "usage_tracking_config",
                "tags",
                "timeouts",
                "description",
                "route_optimized",
            )
        )
        base["name"] = name
        return state_from_detail(base, detail, client.serving_endpoint_url(name))

    # -- helpers ---------------------------------------------------------------------------------
    def vanished(self, planned: State) -> tuple[str, str]:
        return (
            "Serving endpoint disappeared while being applied",
            f"Serving endpoint {planned['name']!r} was deleted by someone else during this apply.",
        )

    def _report_create_error(self, diags: Diagnostics, name: str, error: ApiError) -> None:
        if error.error_code == "RESOURCE_ALREADY_EXISTS":
            hint = (
                f"To manage the existing endpoint with this configuration, import it: terraform import <address> {name}"
            )
            error = ApiError(error.status, error.error_code, f"{error.message}\n{hint}", error.method, error.path)
        report_api_error(diags, f"Could not create serving endpoint {name!r}", error)

    def _update_config(
        self, diags: Diagnostics, client: RtserveClient, current: State, planned: State, timeout: float
    ) -> None:
        """PUT the new config and wait for it. The backend takes one update at a time (409 while another one
        is IN_PROGRESS): wait for that one to finish, within the same timeout, then try again."""
        name = planned["name"]
        clock = self.waiter.clock
        deadline = clock() + timeout
        body = request_config(planned)
        removed = request_table(current.get("auto_capture_config"))
        if "auto_capture_config" not in body and removed is not None:  # left out of an update, it would stay on
            body["auto_capture_config"] = {**removed, "enabled": False}
        while True:
            try:
                detail = client.update_serving_endpoint_config(name, body)
                break
            except ApiError as error:
                if error.error_code != RESOURCE_CONFLICT:
                    report_api_error(diags, f"Could not update the config of serving endpoint {name!r}", error)
                    return
            try:
                self.waiter.wait(lambda: settled_progress(client.get_serving_endpoint(name)), deadline - clock())
            except WaitTimeout as timeout_error:
                diags.add_error(
                    f"Serving endpoint {name!r} is still being updated by another change",
                    f"Its config update did not finish within {timeout:g} s; last status: {timeout_error.last}\n"
                    "Apply again once it is done, or raise `timeouts.update`.",
                )
                return
            except ApiError as error:
                report_api_error(diags, f"Could not follow serving endpoint {name!r}", error)
                return
        self._wait_rollout(diags, client, name, _pending_version(detail), max(deadline - clock(), 0.0), create=False)

    def _wait_rollout(
        self, diags: Diagnostics, client: RtserveClient, name: str, version: int | None, timeout: float, *, create: bool
    ) -> None:
        """Wait until `version` of the config serves, READY and NOT_UPDATING; report a failure or a timeout."""

        def check() -> Progress:
            return rollout_progress(client.get_serving_endpoint(name), version)

        op = "create" if create else "update"
        report = WaitReport(
            subject=f"serving endpoint {name!r}",
            failed=f"Serving endpoint {name!r} could not deploy config version {version}: DEPLOYMENT_FAILED",
            failed_hint=(
                "The endpoint exists and is recorded as tainted: fix the model or the served entity, "
                "then apply again to replace it."
                if create
                else "The previous config keeps serving. Fix the model or the served entity, then apply again."
            ),
            late=f"Serving endpoint {name!r} not ready",
            late_hint=f"Raise `timeouts.{op}`, or look at the served entity's logs: "
            f"GET /api/2.0/serving-endpoints/{name}/served-models/<served entity>/logs.",
        )
        self.wait_for(diags, check, timeout, report)


def _pending_version(detail: dict) -> int | None:
    """The config version a create or update started rolling out."""
    config = detail.get("pending_config") or detail.get("config") or {}
    version = config.get("config_version")
    return version if isinstance(version, int) else None
